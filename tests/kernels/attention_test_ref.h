// attention_test_ref.h — reference helpers shared by the attention kernel tests (portable and flash).
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

namespace ktest {

// Split dqkv (B,T,3C) into its q, k, v parts (each (B,T,C)).
std::vector<float> part(const std::vector<float>& qkv, int B, int T, int C, int which) {
  std::vector<float> r((size_t)B * T * C);
  for (size_t bt = 0; bt < (size_t)B * T; bt++)
    for (int c = 0; c < C; c++) r[bt * C + c] = qkv[bt * 3 * C + (size_t)which * C + c];
  return r;
}

// lse[b,h,t] = log Σ_{t2≤t} exp(q_t·k_t2 / sqrt(hs)) in double.
std::vector<float> ref_lse(const std::vector<float>& qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  std::vector<float> lse((size_t)B * NH * T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY;
        for (int t2 = 0; t2 <= t; t2++) {
          double dot = 0;
          for (int d = 0; d < hs; d++)
            dot += (double)qkv[((size_t)b * T + t) * 3 * C + h * hs + d] *
                   qkv[((size_t)b * T + t2) * 3 * C + C + h * hs + d];
          s[t2] = dot / std::sqrt((double)hs);
          mx = std::max(mx, s[t2]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - mx);
        lse[((size_t)b * NH + h) * T + t] = (float)(mx + std::log(sum));
      }
  return lse;
}

}  // namespace ktest
