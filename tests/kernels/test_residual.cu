// test_residual.cu — residual forward/backward kernels vs ref::residual_forward / ref::residual_backward.
#include "tests/kernels/kernel_test_util.h"
#include "kernels/residual.cuh"
#include "cpu/ops.h"

using namespace ktest;

template <class T>
void check_residual(size_t n, size_t offset, const std::string& tag) {
  SCOPED_TRACE(tag);
  const auto a = round_through<T>(random_vec(n, 31)), b = round_through<T>(random_vec(n, 32));
  std::vector<float> out_ref(n);
  ref::residual_forward(out_ref.data(), a.data(), b.data(), n);
  DeviceArray<T> d_a(n + offset), d_b(n + offset), d_out(n + offset);
  d_a.upload(a, offset);
  d_b.upload(b, offset);
  kern::residual_forward(d_out.ptr + offset, d_a.ptr + offset, d_b.ptr + offset, n, 0);
  // one fp32 add: exact in fp32 up to the add's own rounding (identical on both sides); terms |a|+|b| <= 2
  compare(tag + " forward", d_out.download(offset), out_ref, tolerance<T>(2.0));

  const auto dout = round_through<T>(random_vec(n, 33));
  std::vector<float> da_ref = a, db_ref = b;  // reuse a, b as the existing gradients
  ref::residual_backward(da_ref.data(), db_ref.data(), dout.data(), n);
  DeviceArray<T> d_dout(n + offset);
  d_dout.upload(dout, offset);
  kern::residual_backward(d_a.ptr + offset, d_b.ptr + offset, d_dout.ptr + offset, n, /*accumulate=*/true, 0);
  compare(tag + " backward da +=", d_a.download(offset), da_ref, tolerance<T>(2.0));
  compare(tag + " backward db +=", d_b.download(offset), db_ref, tolerance<T>(2.0));
  d_a.poison();
  d_b.poison();
  kern::residual_backward(d_a.ptr + offset, d_b.ptr + offset, d_dout.ptr + offset, n, /*accumulate=*/false, 0);
  compare(tag + " backward da =", d_a.download(offset), dout, tolerance<T>(0.0));  // a copy: exact
  compare(tag + " backward db =", d_b.download(offset), dout, tolerance<T>(0.0));
}

template <class T>
void check_all_shapes() {
  for (const Shape& s : test_shapes())
    for (size_t offset : {0, 1}) {
      const size_t n = (size_t)s.B * s.T * s.C;
      check_residual<T>(n, offset, std::string(type_name<T>()) + " " + s.name + (offset ? " misaligned" : ""));
    }
}

TEST(KernelResidual, Fp32) { check_all_shapes<float>(); }
TEST(KernelResidual, Bf16) { check_all_shapes<__nv_bfloat16>(); }
