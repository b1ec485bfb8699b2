// safetensors.h — the Hugging Face safetensors format: a hardened reader and an atomic writer.
//
// Layout: u64 little-endian N | N bytes of JSON header | data region.
//   header = { "<tensor>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...,
//              "__metadata__": {"key": "string value", ...} (optional) }
//   offsets are relative to the start of the data region (byte 8 + N).
// Why hardened: a model file is untrusted input. Every rule below is checked before any tensor byte is used,
// and every violation throws llm::Error naming the file (and the tensor):
//   * 8 <= file size, N <= kMaxSafetensorsHeader and N <= file size - 8
//   * the header is valid JSON (nlohmann-json), an object, no duplicate keys, every entry an object with exactly
//     dtype/shape/data_offsets of the right JSON types; __metadata__ maps strings to strings
//   * dtype is a known safetensors dtype; shape entries are non-negative and their product does not overflow
//   * end - begin == numel * element size; offsets in bounds; tensors sorted by offset do not overlap and cover
//     the data region exactly (no holes, no trailing bytes), so the file size matches the header.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llm {

constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;  // 100 MB, the limit the reference implementation uses

struct StTensor {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", "I64", ...
  uint64_t elem_size = 0;       // bytes per element of dtype
  std::vector<int64_t> shape;   // row-major
  uint64_t numel = 1;
  uint64_t begin = 0, end = 0;  // byte range inside the data region
};

struct StHeader {
  std::string source;        // file name used in error messages
  uint64_t header_len = 0;   // N
  uint64_t data_start = 0;   // 8 + N
  uint64_t file_size = 0;
  std::vector<StTensor> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
  const StTensor* find(const std::string& name) const;  // nullptr when absent
};

// Parses and validates a header. `bytes` holds the first `avail` bytes of the file (at least 8 + N of them,
// otherwise it is reported as truncated); `file_size` is the full size of the file.
StHeader parse_safetensors_header(const std::string& source, const uint8_t* bytes, uint64_t avail, uint64_t file_size);

// Random access to the bytes of a safetensors file: a file on disk or a buffer in memory (tests, fuzzing).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual const std::string& name() const = 0;
  virtual uint64_t size() const = 0;
  virtual void read(uint64_t offset, uint64_t bytes, void* dst) = 0;  // fails on any out-of-range read
};
std::unique_ptr<ByteSource> open_file_source(const std::string& path);
std::unique_ptr<ByteSource> memory_source(const std::string& name, const uint8_t* data, uint64_t size);

// An opened, validated safetensors file.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(std::unique_ptr<ByteSource> src);
  explicit SafetensorsReader(const std::string& path) : SafetensorsReader(open_file_source(path)) {}
  const StHeader& header() const { return header_; }
  const std::string& name() const { return header_.source; }
  // Reads tensor t converted to fp32 into dst (t.numel floats). F32, F16 and BF16 are accepted; any other dtype
  // fails with "<file>: tensor '<name>' has dtype X; expected F32, F16 or BF16".
  void read_f32(const StTensor& t, float* dst);
 private:
  std::unique_ptr<ByteSource> src_;
  StHeader header_;
};

// IEEE half -> float (exact, including subnormals, inf and NaN).
float f16_to_fp32(uint16_t h);

// One fp32 tensor to write.
struct StWriteTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;  // numel floats
};

// Writes an F32 safetensors file atomically (<path>.tmp + rename). The header is padded with spaces to a multiple
// of 8 bytes so the data region is aligned, as the reference writer does.
void save_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                      const std::map<std::string, std::string>& metadata);

}  // namespace llm
