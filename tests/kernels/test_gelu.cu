// test_gelu.cu — GELU forward/backward kernels vs ref::gelu_forward / ref::gelu_backward, fp32 and bf16.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/gelu.cuh"
#include "cpu/ops.h"

using namespace ktest;

// offset 0: aligned pointers, 16-byte packed path (+ scalar tail when n is odd);
// offset 1: pointers one element off 16-byte alignment force the scalar kernel (VEC = 1).
template <class T>
void check_gelu(size_t n, size_t offset, const std::string& tag) {
  SCOPED_TRACE(tag);
  const auto x = round_through<T>(random_vec(n, 11, -4.0f, 4.0f));
  std::vector<float> y_ref(n);
  ref::gelu_forward(y_ref.data(), x.data(), n);
  DeviceArray<T> d_x(n + offset), d_y(n + offset);
  d_x.upload(x, offset);
  kern::gelu_forward(d_y.ptr + offset, d_x.ptr + offset, n, 0);
  // |y| <= |x| and the error comes from tanh near ±1: a few ulp of |x|/2 <= 2, so atol = 1e-5 × 0.1 is ample.
  compare(tag + " forward", d_y.download(offset), y_ref, tolerance<T>(0.1));

  const auto dout = round_through<T>(random_vec(n, 12));
  const auto dinp0 = round_through<T>(random_vec(n, 13));
  std::vector<float> dx_acc = dinp0, dx_set(n, 0.0f);
  ref::gelu_backward(dx_acc.data(), x.data(), dout.data(), n);
  ref::gelu_backward(dx_set.data(), x.data(), dout.data(), n);
  DeviceArray<T> d_dout(n + offset), d_dx(n + offset);
  d_dout.upload(dout, offset);
  d_dx.upload(dinp0, offset);
  kern::gelu_backward(d_dx.ptr + offset, d_x.ptr + offset, d_dout.ptr + offset, n, /*accumulate=*/true, 0);
  // terms: |dinp0| <= 1 and |dout·gelu'(x)| <= 1.13
  compare(tag + " backward +=", d_dx.download(offset), dx_acc, tolerance<T>(2.0));
  d_dx.poison();
  kern::gelu_backward(d_dx.ptr + offset, d_x.ptr + offset, d_dout.ptr + offset, n, /*accumulate=*/false, 0);
  // gelu'(x) = 0.5(1+tanh) + 0.5·x·dtanh: terms <= ~1, result in [-0.13, 1.13]
  compare(tag + " backward =", d_dx.download(offset), dx_set, tolerance<T>(1.0));
}

template <class T>
void check_all_shapes() {
  for (const Shape& s : test_shapes())
    for (size_t offset : {0, 1}) {
      const size_t n = (size_t)s.B * s.T * 4 * s.C;  // the MLP's hidden activations (B, T, 4C)
      check_gelu<T>(n, offset, std::string(type_name<T>()) + " " + s.name + (offset ? " misaligned" : ""));
    }
}

TEST(KernelGelu, Fp32) { check_all_shapes<float>(); }
TEST(KernelGelu, Bf16) { check_all_shapes<__nv_bfloat16>(); }

// In place (dinp == dout, overwrite), as the trainer uses it.
TEST(KernelGelu, BackwardInPlace) {
  const size_t n = 1000;
  const auto x = random_vec(n, 21, -3.0f, 3.0f), dout = random_vec(n, 22);
  std::vector<float> ref_dx(n, 0.0f);
  ref::gelu_backward(ref_dx.data(), x.data(), dout.data(), n);
  DeviceArray<float> d_x(x), d_g(dout);
  kern::gelu_backward(d_g.ptr, d_x.ptr, d_g.ptr, n, /*accumulate=*/false, 0);
  compare("fp32 backward in place", d_g.download(), ref_dx, tolerance<float>(1.0));
}
