// test_dropout.cu — dropout kernels vs ref::dropout_forward / ref::dropout_backward: the SAME mask element by
// element (inputs are never zero, so "dropped" is exactly "output == 0"), and kept values scaled by 1/(1-p).
#include "tests/kernels/kernel_test_util.h"
#include "kernels/dropout.cuh"
#include "cpu/ops.h"

using namespace ktest;

// Number of positions where exactly one of got/ref is zero (mask disagreements), and number of zeros in ref.
static void expect_same_mask(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                             float p) {
  size_t disagree = 0, dropped = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    disagree += (got[i] == 0.0f) != (ref[i] == 0.0f);
    dropped += ref[i] == 0.0f;
  }
  EXPECT_EQ(disagree, 0u) << what << ": mask differs from the reference";
  const double frac = ref.empty() ? 0.0 : (double)dropped / ref.size();
  // not a vacuous test: the dropped fraction is near p (binomial, 6 sigma + 1 element)
  const double sigma = std::sqrt(p * (1 - p) / std::max<size_t>(ref.size(), 1));
  EXPECT_NEAR(frac, p, 6 * sigma + 1.0 / std::max<size_t>(ref.size(), 1)) << what;
  std::printf("  %-40s mask: %zu of %zu dropped (p=%.2f), %zu disagreements\n", what.c_str(), dropped, ref.size(), p,
              disagree);
}

template <class T>
void check_dropout(size_t n, size_t offset, float p, const std::string& tag) {
  SCOPED_TRACE(tag);
  llm::DropoutSpec spec;
  spec.p = p;
  spec.seed = 0x123456789abcdefull;  // both key words non-zero
  spec.stream = llm::dropout_stream(3, llm::kDropResidMlp);
  const auto x = round_through<T>(random_vec(n, 41));
  std::vector<float> y_ref(n);
  ref::dropout_forward(y_ref.data(), x.data(), n, spec);
  DeviceArray<T> d_x(n + offset), d_y(n + offset);
  d_x.upload(x, offset);
  kern::dropout_forward(d_y.ptr + offset, d_x.ptr + offset, n, spec, 0);
  const auto y = d_y.download(offset);
  // kept: one multiply by 1/(1-p) <= 2, |x| <= 1
  compare(tag + " forward", y, y_ref, tolerance<T>(0.0));
  expect_same_mask(tag + " forward", y, y_ref, p);

  const auto dout = round_through<T>(random_vec(n, 42)), dinp0 = round_through<T>(random_vec(n, 43));
  std::vector<float> dx_acc = dinp0, dx_set(n, 0.0f);
  ref::dropout_backward(dx_acc.data(), dout.data(), n, spec);
  ref::dropout_backward(dx_set.data(), dout.data(), n, spec);
  DeviceArray<T> d_dout(n + offset), d_dx(n + offset);
  d_dout.upload(dout, offset);
  d_dx.upload(dinp0, offset);
  kern::dropout_backward(d_dx.ptr + offset, d_dout.ptr + offset, n, spec, /*accumulate=*/true, 0);
  compare(tag + " backward +=", d_dx.download(offset), dx_acc, tolerance<T>(3.0));  // terms |dinp0| + 2|dout|
  d_dx.poison();
  kern::dropout_backward(d_dx.ptr + offset, d_dout.ptr + offset, n, spec, /*accumulate=*/false, 0);
  const auto dx = d_dx.download(offset);
  compare(tag + " backward =", dx, dx_set, tolerance<T>(0.0));
  expect_same_mask(tag + " backward =", dx, dx_set, p);
}

template <class T>
void check_all_shapes() {
  for (const Shape& s : test_shapes())
    for (size_t offset : {0, 1})
      for (float p : {0.0f, 0.1f, 0.5f}) {
        const size_t n = (size_t)s.B * s.T * s.C;
        char tag[160];
        std::snprintf(tag, sizeof tag, "%s %s%s p=%.1f", type_name<T>(), s.name, offset ? " misaligned" : "", p);
        check_dropout<T>(n, offset, p, tag);
      }
}

TEST(KernelDropout, Fp32) { check_all_shapes<float>(); }
TEST(KernelDropout, Bf16) { check_all_shapes<__nv_bfloat16>(); }

// The kernel's per-4-elements Philox reuse must give llm::dropout_keep for every single index, including
// indices whose counter needs the high word (index >= 2^34).
TEST(KernelDropout, MaskBitsMatchPhilox) {
  llm::DropoutSpec spec;
  spec.p = 0.3f;
  spec.seed = 42;
  spec.stream = 7;
  for (uint64_t base : {0ull, 4ull, 1000ull, (1ull << 34) + 8, (1ull << 40) + 4}) {
    const uint32_t bits8 = kern::dropout_keep_bits<8>(spec, base), bits1 = kern::dropout_keep_bits<1>(spec, base + 5);
    for (int k = 0; k < 8; k++) EXPECT_EQ((bits8 >> k) & 1u, llm::dropout_keep(spec, base + k) ? 1u : 0u) << base + k;
    EXPECT_EQ(bits1 & 1u, llm::dropout_keep(spec, base + 5) ? 1u : 0u);
  }
}
