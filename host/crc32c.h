// crc32c.h — CRC-32C (Castagnoli, iSCSI polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of the
// payloads of the model and state files we write (host/checkpoint.h, host/train_state.h), so that a flipped
// byte on disk or in transit is an error on load instead of a silently different model.
// SSE4.2's crc32 instruction when the CPU has it (~10+ GB/s), else a table (same values).
#pragma once
#include <cstddef>
#include <cstdint>

namespace llm {

// CRC-32C of data[0..n) continuing from `crc` (the result of the previous piece; 0 to start).
// crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace llm
