// gemm_old.h — the previous GEMM (8x32 kernel, A read in place), for benchmark comparisons only.
#pragma once
#include "cpu/gemm.h"

namespace ref_old {
void gemm_accumulate(float* C, size_t ldc, ref::MatView A, ref::MatView B, int M, int N, int K);
// ref::gemm's contract on top of it, exactly as the old matmul_forward did it (C = bias or 0, then accumulate).
void gemm(float* C, size_t ldc, ref::MatView A, ref::MatView B, int M, int N, int K, bool accumulate,
          const float* bias);
}  // namespace ref_old
