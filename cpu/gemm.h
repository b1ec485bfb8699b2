// gemm.h — the one matrix-multiply engine behind matmul_forward/backward.
//
// Why a separate engine: the three products of a linear layer (out = X·Wᵀ, dX += dY·W, dW += dYᵀ·X) are
// the same operation C += A·B with different memory strides. One cache-blocked, packed, register-tiled
// routine serves all three, which is what makes the CPU step fast without BLAS.
//
// Determinism: every C element is summed over k in the same order (K blocks in order, k in order inside a
// block) no matter how many threads run; threads only split the M×N tiles.
#pragma once
#include <cstddef>

namespace ref {

// A strided read-only matrix view: element (i, j) lives at p[i*rs + j*cs].
struct MatView {
  const float* p;
  size_t rs, cs;
};

// C(M,N) += A(M,K) · B(K,N); C is row-major with leading dimension ldc.
void gemm_accumulate(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K);

}  // namespace ref
