// gemm.h — the one matrix-multiply engine behind matmul_forward/backward.
//
// Why a separate engine: the three products of a linear layer (out = X·Wᵀ, dX += dY·W, dW += dYᵀ·X) are
// the same operation C += A·B with different memory strides. One cache-blocked, packed, register-tiled
// routine serves all three, which is what makes the CPU step fast without BLAS.
//
// Determinism: every C element is computed by exactly one thread and summed over k in the same order
// (K blocks in order, k in order inside a block) whatever the thread count, so results are bit-identical
// for any number of threads (threads only split the rows or the columns of C).
#pragma once
#include <cstddef>

namespace ref {

// A strided read-only matrix view: element (i, j) lives at p[i*rs + j*cs].
struct MatView {
  const float* p;
  size_t rs, cs;
};

// C(M,N) = A(M,K)·B(K,N) [+ bias(N) added to every row]  when accumulate is false (C is only written),
// C(M,N) += A(M,K)·B(K,N)                                when accumulate is true (bias must be nullptr).
// C is row-major with leading dimension ldc. K == 0 gives C = bias (or 0) / leaves C unchanged.
void gemm(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K, bool accumulate,
          const float* bias = nullptr);

// C(M,N) += A(M,K) · B(K,N)
inline void gemm_accumulate(float* C, size_t ldc, MatView A, MatView B, int M, int N, int K) {
  gemm(C, ldc, A, B, M, N, K, true);
}

}  // namespace ref
