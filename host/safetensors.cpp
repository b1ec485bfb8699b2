#include "host/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "host/binary_io.h"
#include "host/error.h"

namespace llm {

using json = nlohmann::json;

// Element sizes of every dtype the safetensors format defines. Anything else is rejected as unknown.
static uint64_t dtype_size(const std::string& d) {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

const StTensor* StHeader::find(const std::string& name) const {
  for (const StTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// Parses the JSON text, rejecting duplicate keys at any depth (nlohmann would silently keep the last one).
static json parse_json_no_duplicates(const std::string& source, const char* text, uint64_t len) {
  std::vector<std::set<std::string>> keys;  // one key set per open object
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, text + len, cb);
  } catch (const json::exception& e) {
    fail(source, ": safetensors header is not valid JSON (", e.what(), ")");
  }
  if (!duplicate.empty()) fail(source, ": safetensors header has the key '", duplicate, "' more than once");
  return j;
}

static uint64_t checked_mul(const std::string& source, const std::string& name, uint64_t a, uint64_t b) {
  if (b != 0 && a > (UINT64_MAX >> 2) / b)
    fail(source, ": tensor '", name, "' is impossibly large (element count overflows)");
  return a * b;
}

static StTensor parse_entry(const std::string& source, const std::string& name, const json& e) {
  if (!e.is_object()) fail(source, ": header entry '", name, "' is not an object");
  for (auto it = e.begin(); it != e.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      fail(source, ": tensor '", name, "' has an unexpected field '", it.key(), "'");
  if (!e.contains("dtype") || !e["dtype"].is_string()) fail(source, ": tensor '", name, "' has no string dtype");
  if (!e.contains("shape") || !e["shape"].is_array()) fail(source, ": tensor '", name, "' has no shape array");
  if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
    fail(source, ": tensor '", name, "' has no data_offsets [begin, end] pair");
  StTensor t;
  t.name = name;
  t.dtype = e["dtype"].get<std::string>();
  t.elem_size = dtype_size(t.dtype);
  if (t.elem_size == 0) fail(source, ": tensor '", name, "' has unknown dtype '", t.dtype, "'");
  if (e["shape"].size() > 16) fail(source, ": tensor '", name, "' has ", e["shape"].size(), " dimensions (at most 16)");
  for (const json& d : e["shape"]) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t)INT64_MAX)
      fail(source, ": tensor '", name, "' has a shape entry that is not a non-negative integer: ", d.dump());
    t.shape.push_back((int64_t)d.get<uint64_t>());
    t.numel = checked_mul(source, name, t.numel, d.get<uint64_t>());
  }
  for (const json& o : e["data_offsets"])
    if (!o.is_number_unsigned()) fail(source, ": tensor '", name, "' has a data offset that is not a non-negative integer");
  t.begin = e["data_offsets"][0].get<uint64_t>();
  t.end = e["data_offsets"][1].get<uint64_t>();
  if (t.end < t.begin) fail(source, ": tensor '", name, "' has data_offsets [", t.begin, ", ", t.end, "] with end < begin");
  const uint64_t bytes = checked_mul(source, name, t.numel, t.elem_size);
  if (t.end - t.begin != bytes)
    fail(source, ": tensor '", name, "' spans ", t.end - t.begin, " bytes but its shape and dtype ", t.dtype, " need ",
         bytes);
  return t;
}

StHeader parse_safetensors_header(const std::string& source, const uint8_t* bytes, uint64_t avail, uint64_t file_size) {
  if (file_size < 8 || avail < 8)
    fail(source, ": truncated (", file_size, " bytes; a safetensors file starts with an 8-byte header length)");
  StHeader h;
  h.source = source;
  h.file_size = file_size;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];  // little-endian u64
  if (n > kMaxSafetensorsHeader)
    fail(source, ": safetensors header length ", n, " exceeds the ", kMaxSafetensorsHeader, "-byte limit (not a safetensors file?)");
  if (n > file_size - 8)
    fail(source, ": safetensors header length ", n, " is larger than the rest of the file (", file_size - 8, " bytes); truncated?");
  if (n < 2) fail(source, ": safetensors header length ", n, " is too small to hold a JSON object");
  if (avail < 8 + n) fail(source, ": truncated while reading the safetensors header");
  h.header_len = n;
  h.data_start = 8 + n;
  json j = parse_json_no_duplicates(source, reinterpret_cast<const char*>(bytes + 8), n);
  if (!j.is_object()) fail(source, ": safetensors header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(source, ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(source, ": __metadata__ entry '", m.key(), "' is not a string");
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(source, it.key(), *it));
  }
  // Offsets: in bounds, no overlap, no hole, nothing after the last tensor.
  const uint64_t data_size = file_size - h.data_start;
  std::stable_sort(h.tensors.begin(), h.tensors.end(),
                   [](const StTensor& a, const StTensor& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t cursor = 0;
  std::string prev = "(start of data)";
  for (const StTensor& t : h.tensors) {
    if (t.end > data_size)
      fail(source, ": tensor '", t.name, "' data_offsets [", t.begin, ", ", t.end, "] run past the end of the data region (",
           data_size, " bytes); truncated file?");
    if (t.begin < cursor) fail(source, ": tensor '", t.name, "' overlaps tensor '", prev, "' (bytes ", t.begin, "..", cursor, ")");
    if (t.begin > cursor)
      fail(source, ": hole of ", t.begin - cursor, " unused bytes before tensor '", t.name, "' (at data offset ", cursor, ")");
    cursor = t.end;
    prev = t.name;
  }
  if (cursor != data_size)
    fail(source, ": file has ", data_size - cursor, " bytes after the last tensor's data (size ", file_size,
         " disagrees with the header)");
  return h;
}

// ---- byte sources ----

namespace {
class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : f_(path) {}
  const std::string& name() const override { return f_.path(); }
  uint64_t size() const override { return f_.size(); }
  void read(uint64_t offset, uint64_t bytes, void* dst) override {
    if (offset > f_.size() || bytes > f_.size() - offset)
      fail(f_.path(), ": read of ", bytes, " bytes at offset ", offset, " is past the end of the file");
    f_.seek(offset);
    f_.read(dst, bytes, "tensor data");
  }
 private:
  InFile f_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const std::string& name, const uint8_t* data, uint64_t size) : name_(name), data_(data), size_(size) {}
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, uint64_t bytes, void* dst) override {
    if (offset > size_ || bytes > size_ - offset)
      fail(name_, ": read of ", bytes, " bytes at offset ", offset, " is past the end of the data");
    if (bytes) std::memcpy(dst, data_ + offset, bytes);
  }
 private:
  std::string name_;
  const uint8_t* data_;
  uint64_t size_;
};
}  // namespace

std::unique_ptr<ByteSource> open_file_source(const std::string& path) { return std::make_unique<FileSource>(path); }
std::unique_ptr<ByteSource> memory_source(const std::string& name, const uint8_t* data, uint64_t size) {
  return std::make_unique<MemorySource>(name, data, size);
}

SafetensorsReader::SafetensorsReader(std::unique_ptr<ByteSource> src) : src_(std::move(src)) {
  const std::string& name = src_->name();
  const uint64_t size = src_->size();
  if (size < 8) fail(name, ": truncated (", size, " bytes; a safetensors file starts with an 8-byte header length)");
  uint8_t len8[8];
  src_->read(0, 8, len8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
  // Bound n before allocating anything for it (parse_safetensors_header repeats the checks with messages).
  const uint64_t avail = std::min<uint64_t>(size, 8 + std::min<uint64_t>(n, kMaxSafetensorsHeader));
  std::vector<uint8_t> head(avail);
  src_->read(0, avail, head.data());
  header_ = parse_safetensors_header(name, head.data(), avail, size);
}

float f16_to_fp32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN
  else if (exp != 0) bits = sign | ((exp + 112u) << 23) | (mant << 13);  // normal: rebias 15 -> 127
  else if (mant == 0) bits = sign;                                       // signed zero
  else {  // subnormal: value = mant * 2^-24, exact in fp32
    float v = (float)mant * (1.0f / 16777216.0f);
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  }
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

static float bf16_bits_to_fp32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

void SafetensorsReader::read_f32(const StTensor& t, float* dst) {
  const uint64_t at = header_.data_start + t.begin;
  if (t.dtype == "F32") {
    src_->read(at, t.numel * 4, dst);
    return;
  }
  if (t.dtype != "F16" && t.dtype != "BF16")
    fail(name(), ": tensor '", t.name, "' has dtype ", t.dtype, "; expected F32, F16 or BF16");
  const bool half = t.dtype == "F16";
  const uint64_t chunk = 1 << 20;  // convert in 2 MB pieces instead of holding a second copy of the tensor
  std::vector<uint16_t> buf(std::min<uint64_t>(chunk, t.numel));
  for (uint64_t i = 0; i < t.numel; i += chunk) {
    const uint64_t n = std::min<uint64_t>(chunk, t.numel - i);
    src_->read(at + 2 * i, 2 * n, buf.data());
    for (uint64_t j = 0; j < n; j++) dst[i + j] = half ? f16_to_fp32(buf[j]) : bf16_bits_to_fp32(buf[j]);
  }
}

// ---- writer ----

void save_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> numels;
  for (const StWriteTensor& t : tensors) {
    if (t.name == "__metadata__" || h.contains(t.name)) fail(path, ": cannot write tensor name '", t.name, "' twice");
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(path, ": tensor '", t.name, "' has a negative dimension");
      n *= (uint64_t)d;
    }
    numels.push_back(n);
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string text = h.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // align the data region to 8 bytes
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)text.size() >> (8 * i));
  AtomicFile out(path);
  out.write(len8, 8);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); i++) out.write(tensors[i].data, 4 * numels[i]);
  out.commit();
}

}  // namespace llm
