// test_encoder.cu — embedding forward/backward kernels vs ref::encoder_forward / ref::encoder_backward.
// The backward must be deterministic and handle tokens that repeat many times in a batch.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/encoder.cuh"
#include "cpu/ops.h"

using namespace ktest;

constexpr int kVocab = 256;  // the tiny model's vocabulary

template <class T>
void check_encoder(const Shape& s, const std::vector<int>& tokens, const std::string& tag) {
  SCOPED_TRACE(tag);
  const int B = s.B, Tn = s.T, C = s.C;
  const size_t n = (size_t)B * Tn * C;
  const auto wte = round_through<T>(random_vec((size_t)kVocab * C, 81)), wpe = round_through<T>(random_vec((size_t)Tn * C, 82));
  std::vector<float> out_ref(n);
  ref::encoder_forward(out_ref.data(), tokens.data(), wte.data(), wpe.data(), B, Tn, C);
  DeviceArray<T> d_wte(wte), d_wpe(wpe), d_out(n);
  DeviceInts d_tok(tokens);
  kern::encoder_forward(d_out.ptr, d_tok.ptr, d_wte.ptr, d_wpe.ptr, B, Tn, C, 0);
  compare(tag + " encoder_forward", d_out.download(), out_ref, tolerance<T>(0.0));  // one add

  const auto dout = round_through<T>(random_vec(n, 83));
  const auto dwte0 = round_through<T>(random_vec((size_t)kVocab * C, 84)), dwpe0 = round_through<T>(random_vec((size_t)Tn * C, 85));
  std::vector<float> dwte_ref = dwte0, dwpe_ref = dwpe0;
  ref::encoder_backward(dwte_ref.data(), dwpe_ref.data(), dout.data(), tokens.data(), B, Tn, C);
  // term scales: |initial| + Σ|dout| of the rows that land on each element (the same scatter on |dout|)
  std::vector<float> abs_dout(n), s_wte(dwte0.size()), s_wpe(dwpe0.size());
  for (size_t i = 0; i < n; i++) abs_dout[i] = std::fabs(dout[i]);
  for (size_t i = 0; i < s_wte.size(); i++) s_wte[i] = std::fabs(dwte0[i]);
  for (size_t i = 0; i < s_wpe.size(); i++) s_wpe[i] = std::fabs(dwpe0[i]);
  ref::encoder_backward(s_wte.data(), s_wpe.data(), abs_dout.data(), tokens.data(), B, Tn, C);

  DeviceArray<T> d_dout(dout), d_dwte(dwte0), d_dwpe(dwpe0);
  DeviceArray<int> d_scratch(kern::encoder_backward_scratch_ints(B, Tn));
  kern::encoder_backward(d_dwte.ptr, d_dwpe.ptr, d_scratch.ptr, d_dout.ptr, tokens.data(), B, Tn, C, 0);
  compare(tag + " encoder_backward dwte", d_dwte.download(), dwte_ref, tolerance<T>(1.0), &s_wte);
  compare(tag + " encoder_backward dwpe", d_dwpe.download(), dwpe_ref, tolerance<T>(1.0), &s_wpe);

  // deterministic: same inputs, same bits
  const auto first = d_dwte.download_raw();
  d_dwte.upload(dwte0);
  d_dwpe.upload(dwpe0);
  d_scratch.poison();
  kern::encoder_backward(d_dwte.ptr, d_dwpe.ptr, d_scratch.ptr, d_dout.ptr, tokens.data(), B, Tn, C, 0);
  const auto second = d_dwte.download_raw();
  EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(T))) << "not deterministic";

  // the plan uploaded first and a launch sized for B·T buckets (what a CUDA graph replays): the same bits, the
  // blocks past the last bucket write nothing
  d_dwte.upload(dwte0);
  d_dwpe.upload(dwpe0);
  std::vector<int> plan;
  kern::encoder_backward_plan(plan, tokens.data(), B, Tn);
  DeviceInts d_plan(plan);
  kern::encoder_backward_planned(d_dwte.ptr, d_dwpe.ptr, (const int*)d_plan.ptr, (const T*)d_dout.ptr, B, Tn, C,
                                 B * Tn, 0);
  const auto widest = d_dwte.download_raw();
  EXPECT_EQ(0, std::memcmp(first.data(), widest.data(), first.size() * sizeof(T))) << "B*T-block launch differs";
}

template <class T>
void check_all_shapes() {
  for (const Shape& s : test_shapes()) {
    const size_t BT = (size_t)s.B * s.T;
    const std::string tag = std::string(type_name<T>()) + " " + s.name;
    check_encoder<T>(s, random_tokens(BT, kVocab, 86), tag + " uniform tokens");
    // a "hot" token (every third position) and a few others: big and small buckets
    auto hot = random_tokens(BT, 5, 87);
    for (size_t i = 0; i < BT; i += 3) hot[i] = 200;
    check_encoder<T>(s, hot, tag + " repeated tokens");
  }
}

TEST(KernelEncoder, Fp32) { check_all_shapes<float>(); }
TEST(KernelEncoder, Bf16) { check_all_shapes<__nv_bfloat16>(); }

// The host-side bucket plan: every position exactly once, grouped by token, increasing inside a bucket,
// buckets largest first.
TEST(KernelEncoder, BucketPlan) {
  const std::vector<int> tok = {5, 3, 5, 7, 3, 5, 1};
  std::vector<int> plan;
  const int nb = kern::encoder_backward_plan(plan, tok.data(), 1, (int)tok.size());
  const int BT = (int)tok.size();
  ASSERT_EQ(nb, 4);
  const int* pos = plan.data();
  const int* start = plan.data() + BT;
  const int* token = plan.data() + 2 * BT + 1;
  EXPECT_EQ(std::vector<int>(token, token + nb), (std::vector<int>{5, 3, 1, 7}));
  EXPECT_EQ(std::vector<int>(start, start + nb + 1), (std::vector<int>{0, 3, 5, 6, 7}));
  EXPECT_EQ(std::vector<int>(pos, pos + BT), (std::vector<int>{0, 2, 5, 1, 4, 6, 3}));
}
