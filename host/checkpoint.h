// checkpoint.h — llm.c model checkpoints (model_########.bin, gpt2_124M.bin, gpt2_124M_bf16.bin).
//
// Layout: 256 little-endian int32 header slots (1024 bytes), then every parameter tensor back-to-back in the
// order of gpt2_config.h, as fp32 (version 3) or bf16 bit patterns (version 5).
//   slot 0 magic 20240326 | 1 version 3/5 | 2 maxT | 3 V | 4 L | 5 NH | 6 C | 7 Vp
//   slot 8 = 1: no qkv bias (our extension) | slot 9 = 1: untied LM head, lm_head (Vp,C) follows (our extension)
//   slot 10 = 1: slot 11 holds the CRC-32C of the file (header with slot 11 = 0, then the parameter bytes);
//   written by us, verified on load; 0 in llm.c files and in ours from before it (they load unchecked)
//   every other slot is zero.
// llm.c files have slots 8/9 zero, i.e. qkv bias + tied head, so they load unchanged.
// Reading validates every header field and that the file size is exactly 1024 + elemsize * num_parameters.
// Writing goes to "<path>.tmp", is fsynced and renamed into place (and the directory fsynced), so neither a crash
// nor a power loss leaves a half-written checkpoint under the final name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "host/gpt2_config.h"

namespace llm {

constexpr int kCheckpointMagic = 20240326;
constexpr int kCheckpointVersionFp32 = 3;
constexpr int kCheckpointVersionBf16 = 5;
constexpr int kHeaderInts = 256;  // 1024-byte header

enum class CheckpointDtype { kFp32, kBf16 };

// fp32 -> bf16 with round-to-nearest-even (NaN stays a quiet NaN); bf16 -> fp32 is exact.
uint16_t fp32_to_bf16(float x);
float bf16_to_fp32(uint16_t b);

struct CheckpointInfo {
  GPT2Config config;  // dropout is not stored in checkpoints (it is a training setting) and reads as 0
  CheckpointDtype dtype = CheckpointDtype::kFp32;
  bool has_crc = false;  // header slot 10
  uint32_t crc = 0;      // header slot 11
};

// Reads and validates only the header (and the file size). Throws llm::Error naming the file.
CheckpointInfo read_checkpoint_header(const std::string& path);

// Reads header + parameters; bf16 files are widened to fp32. params gets num_parameters(config) floats.
CheckpointInfo load_checkpoint(const std::string& path, std::vector<float>* params);

// Writes config + params (num_parameters(config) floats) atomically; bf16 rounds to nearest even.
void save_checkpoint(const std::string& path, const GPT2Config& config, const float* params,
                     CheckpointDtype dtype = CheckpointDtype::kFp32);

}  // namespace llm
