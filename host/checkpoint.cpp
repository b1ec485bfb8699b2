#include "host/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include "host/binary_io.h"
#include "host/crc32c.h"
#include "host/error.h"
#include "host/memory.h"
#include "host/weights_check.h"

namespace llm {

uint16_t fp32_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
  uint32_t lsb = (bits >> 16) & 1u;
  bits += 0x7fffu + lsb;
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_fp32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

// Upper bounds keep every size computation far from overflow and reject garbage headers early.
static void check_range(const std::string& path, const char* name, int v, int lo, int hi) {
  if (v < lo || v > hi) fail(path, ": header field ", name, " = ", v, " is out of range [", lo, ", ", hi, "]");
}

static CheckpointInfo parse_header(const std::string& path, const int32_t* h, uint64_t file_size) {
  if (h[0] != kCheckpointMagic)
    fail(path, ": bad magic ", h[0], " (expected ", kCheckpointMagic, "; not an llm.c model checkpoint)");
  CheckpointInfo info;
  if (h[1] == kCheckpointVersionFp32) info.dtype = CheckpointDtype::kFp32;
  else if (h[1] == kCheckpointVersionBf16) info.dtype = CheckpointDtype::kBf16;
  else fail(path, ": unsupported checkpoint version ", h[1], " (expected 3 = fp32 or 5 = bf16)");
  GPT2Config& c = info.config;
  c.max_seq_len = h[2];
  c.vocab_size = h[3];
  c.num_layers = h[4];
  c.num_heads = h[5];
  c.channels = h[6];
  c.padded_vocab_size = h[7];
  check_range(path, "max_seq_len", c.max_seq_len, 1, 1 << 20);
  check_range(path, "vocab_size", c.vocab_size, 1, 1 << 24);
  check_range(path, "num_layers", c.num_layers, 1, 4096);
  check_range(path, "num_heads", c.num_heads, 1, 4096);
  check_range(path, "channels", c.channels, 1, 1 << 16);
  check_range(path, "padded_vocab_size", c.padded_vocab_size, 1, 1 << 24);
  if (c.padded_vocab_size < c.vocab_size)
    fail(path, ": header padded_vocab_size ", c.padded_vocab_size, " is smaller than vocab_size ", c.vocab_size);
  if (c.channels % c.num_heads != 0)
    fail(path, ": header channels ", c.channels, " is not divisible by num_heads ", c.num_heads);
  if (h[8] != 0 && h[8] != 1) fail(path, ": header slot 8 (no-qkv-bias flag) = ", h[8], ", expected 0 or 1");
  if (h[9] != 0 && h[9] != 1) fail(path, ": header slot 9 (untied-head flag) = ", h[9], ", expected 0 or 1");
  c.qkv_bias = h[8] == 0;
  c.tied_head = h[9] == 0;
  c.dropout = 0.0f;
  if (h[10] != 0 && h[10] != 1) fail(path, ": header slot 10 (CRC-32C flag) = ", h[10], ", expected 0 or 1");
  if (h[10] == 0 && h[11] != 0) fail(path, ": header slot 11 = ", h[11], " without the CRC-32C flag in slot 10");
  info.has_crc = h[10] == 1;
  std::memcpy(&info.crc, &h[11], 4);
  for (int i = 12; i < kHeaderInts; i++)
    if (h[i] != 0) fail(path, ": header slot ", i, " = ", h[i], ", expected 0 (unused)");
  const uint64_t elem = info.dtype == CheckpointDtype::kFp32 ? 4 : 2;
  const uint64_t expected = kHeaderInts * 4 + elem * num_parameters(c);
  if (file_size != expected)
    fail(path, ": file size ", file_size, " bytes disagrees with the header (", num_parameters(c), " parameters as ",
         elem == 4 ? "fp32" : "bf16", " need ", expected, " bytes); the file is ",
         file_size < expected ? "truncated" : "oversized", " or the header is wrong");
  return info;
}

CheckpointInfo read_checkpoint_header(const std::string& path) {
  InFile f(path);
  if (f.size() < kHeaderInts * 4)
    fail(path, ": truncated (", f.size(), " bytes, smaller than the 1024-byte checkpoint header)");
  int32_t h[kHeaderInts];
  f.read(h, sizeof(h), "the header");
  return parse_header(path, h, f.size());
}

CheckpointInfo load_checkpoint(const std::string& path, std::vector<float>* params) {
  InFile f(path);
  if (f.size() < kHeaderInts * 4)
    fail(path, ": truncated (", f.size(), " bytes, smaller than the 1024-byte checkpoint header)");
  int32_t h[kHeaderInts];
  f.read(h, sizeof(h), "the header");
  CheckpointInfo info = parse_header(path, h, f.size());
  const size_t n = num_parameters(info.config);
  h[11] = 0;  // the CRC covers the header with its own slot zero, then the parameter bytes as stored
  uint32_t crc = info.has_crc ? crc32c(h, sizeof(h)) : 0;
  check_memory(path, static_cast<uint64_t>(n) * 4, std::to_string(n) + " fp32 parameters");
  params->assign(n, 0.0f);
  if (info.dtype == CheckpointDtype::kFp32) {
    f.read(params->data(), n * 4, "the fp32 parameters");
    if (info.has_crc) crc = crc32c(params->data(), n * 4, crc);
  } else {
    // widen in chunks so a 124M bf16 file does not need a second full-size buffer
    std::vector<uint16_t> buf(std::min<size_t>(n, 1 << 20));
    for (size_t done = 0; done < n;) {
      size_t k = std::min(buf.size(), n - done);
      f.read(buf.data(), k * 2, "the bf16 parameters");
      if (info.has_crc) crc = crc32c(buf.data(), k * 2, crc);
      for (size_t i = 0; i < k; i++) (*params)[done + i] = bf16_to_fp32(buf[i]);
      done += k;
    }
  }
  if (info.has_crc && crc != info.crc) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "CRC-32C mismatch (header 0x%08x, contents 0x%08x)", info.crc, crc);
    fail(path, ": ", msg, ": the file is corrupted");
  }
  check_finite_params(path, info.config, params->data());
  return info;
}

void save_checkpoint(const std::string& path, const GPT2Config& c, const float* params, CheckpointDtype dtype) {
  int32_t h[kHeaderInts] = {};
  h[0] = kCheckpointMagic;
  h[1] = dtype == CheckpointDtype::kFp32 ? kCheckpointVersionFp32 : kCheckpointVersionBf16;
  h[2] = c.max_seq_len;
  h[3] = c.vocab_size;
  h[4] = c.num_layers;
  h[5] = c.num_heads;
  h[6] = c.channels;
  h[7] = c.padded_vocab_size;
  h[8] = c.qkv_bias ? 0 : 1;
  h[9] = c.tied_head ? 0 : 1;
  h[10] = 1;  // CRC-32C in slot 11 (llm.c readers ignore both slots)
  const size_t n = num_parameters(c);
  check_finite_params(path, c, params);  // a checkpoint never holds NaN/Inf (unless --allow-nonfinite)
  // bf16 is converted twice (once for the CRC, once to write) so the header can go first in one pass
  std::vector<uint16_t> buf(dtype == CheckpointDtype::kBf16 ? std::min<size_t>(n, 1 << 20) : 0);
  auto for_each_bf16_chunk = [&](const std::function<void(const uint16_t*, size_t)>& fn) {
    for (size_t done = 0; done < n;) {
      size_t k = std::min(buf.size(), n - done);
      for (size_t i = 0; i < k; i++) buf[i] = fp32_to_bf16(params[done + i]);
      fn(buf.data(), k);
      done += k;
    }
  };
  uint32_t crc = crc32c(h, sizeof(h));  // (slot 11 still 0)
  if (dtype == CheckpointDtype::kFp32) crc = crc32c(params, n * 4, crc);
  else for_each_bf16_chunk([&](const uint16_t* b, size_t k) { crc = crc32c(b, k * 2, crc); });
  std::memcpy(&h[11], &crc, 4);
  AtomicFile out(path);
  out.write(h, sizeof(h));
  if (dtype == CheckpointDtype::kFp32) out.write(params, n * 4);
  else for_each_bf16_chunk([&](const uint16_t* b, size_t k) { out.write(b, k * 2); });
  out.commit();
}

}  // namespace llm
