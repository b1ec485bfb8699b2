// Safetensors reader/writer: valid files round-trip; every malformed file is a clear llm::Error naming the file
// and (where there is one) the tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "host/error.h"
#include "host/safetensors.h"
#include "test_weights_util.h"

using llm::StHeader;

namespace {

// Parses an in-memory file and returns the error text ("" when it parses).
std::string parse_error(const std::string& bytes) {
  try {
    llm::parse_safetensors_header("bad.safetensors", (const uint8_t*)bytes.data(), bytes.size(), bytes.size());
  } catch (const llm::Error& e) {
    return e.what();
  }
  return "";
}

std::string f32_bytes(std::vector<float> v) { return std::string((const char*)v.data(), v.size() * 4); }

#define EXPECT_ERROR_HAS(bytes, needle)                                  \
  do {                                                                   \
    std::string msg = parse_error(bytes);                                \
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg; \
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;    \
  } while (0)

const std::string kTwo =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}})";

}  // namespace

TEST(WeightsSafetensors, ParsesValidHeader) {
  std::string f = wt::st_bytes(R"({"__metadata__":{"format":"pt"},)" + kTwo.substr(1), f32_bytes({1, 2, 3}));
  StHeader h = llm::parse_safetensors_header("x", (const uint8_t*)f.data(), f.size(), f.size());
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  const llm::StTensor* b = h.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(b->begin, 8u);
  EXPECT_EQ(h.data_start, 8 + h.header_len);
  // Values read back through a memory source.
  llm::SafetensorsReader r(llm::memory_source("mem", (const uint8_t*)f.data(), f.size()));
  float out[2];
  r.read_f32(*r.header().find("a"), out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
}

TEST(WeightsSafetensors, HeaderLengthChecks) {
  EXPECT_ERROR_HAS(std::string("\x01\x02\x03", 3), "truncated");
  EXPECT_ERROR_HAS(wt::st_bytes(kTwo, f32_bytes({1, 2, 3}), 200ll << 20), "exceeds");
  EXPECT_ERROR_HAS(wt::st_bytes(kTwo, f32_bytes({1, 2, 3}), (long long)kTwo.size() + 100), "larger than the rest of the file");
  EXPECT_ERROR_HAS(wt::st_bytes(kTwo, f32_bytes({1, 2, 3}), -1).substr(0, 8) + std::string(4, ' '),
                   "larger than the rest");
  EXPECT_ERROR_HAS(wt::st_bytes("{", ""), "too small");
}

TEST(WeightsSafetensors, JsonStructureChecks) {
  EXPECT_ERROR_HAS(wt::st_bytes("{\"a\": [1,2", ""), "not valid JSON");
  EXPECT_ERROR_HAS(wt::st_bytes("[1,2,3]", ""), "not a JSON object");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                f32_bytes({1, 2})),
                   "more than once");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":5})", ""), "'a' is not an object");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})), "no string dtype");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", f32_bytes({1})), "no shape");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", f32_bytes({1})), "data_offsets");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", f32_bytes({1})),
                   "unexpected field 'x'");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"__metadata__":{"k":1}})", ""), "'k' is not a string");
}

TEST(WeightsSafetensors, DtypeAndShapeChecks) {
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", f32_bytes({1})),
                   "tensor 'w' has unknown dtype 'F33'");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f32_bytes({1})),
                   "not a non-negative integer");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", f32_bytes({1})),
                   "not a non-negative integer");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", f32_bytes({1})),
                   "tensor 'w' spans 4 bytes but its shape and dtype F32 need 8");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})",
                                f32_bytes({1})),
                   "overflows");
}

TEST(WeightsSafetensors, OffsetChecks) {
  const std::string d = f32_bytes({1, 2, 3});
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", d),
                   "tensor 'b' overlaps tensor 'a'");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", d),
                   "hole of 4 unused bytes before tensor 'b'");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d),
                   "tensor 'a' data_offsets [0, 16] run past the end");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d), "4 bytes after the last tensor");
  EXPECT_ERROR_HAS(wt::st_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", d), "end < begin");
  // Truncating a valid file anywhere in its data is detected.
  std::string good = wt::st_bytes(kTwo, d);
  EXPECT_EQ(parse_error(good), "");
  EXPECT_ERROR_HAS(good.substr(0, good.size() - 1), "run past the end");
  EXPECT_ERROR_HAS(good.substr(0, 20), "larger than the rest of the file");
}

TEST(WeightsSafetensors, F16AndBf16Conversion) {
  // Closed-form half values: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001,
  // inf = 0x7c00; bf16 1.5 = 0x3fc0, -0.5 = 0xbf00.
  EXPECT_EQ(llm::f16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(llm::f16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(llm::f16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(llm::f16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(llm::f16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(llm::f16_to_fp32(0x7c00)));
  EXPECT_TRUE(std::isnan(llm::f16_to_fp32(0x7e00)));
  EXPECT_TRUE(std::signbit(llm::f16_to_fp32(0x8000)));
  uint16_t h[2] = {0x3c00, 0xc000}, b[2] = {0x3fc0, 0xbf00};
  std::string f = wt::st_bytes(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},"i":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})",
                               std::string((char*)h, 4) + std::string((char*)b, 4) + std::string(4, '\0'));
  llm::SafetensorsReader r(llm::memory_source("mem.safetensors", (const uint8_t*)f.data(), f.size()));
  float out[2];
  r.read_f32(*r.header().find("h"), out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  r.read_f32(*r.header().find("b"), out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -0.5f);
  try {
    r.read_f32(*r.header().find("i"), out);
    FAIL() << "I32 accepted";
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'i' has dtype I32; expected F32, F16 or BF16"), std::string::npos) << e.what();
  }
}

TEST(WeightsSafetensors, WriterRoundTripAndAlignment) {
  const std::string dir = wt::temp_dir("st_write");
  const std::string path = dir + "/t.safetensors";
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-7};
  llm::save_safetensors(path, {{"a", {2, 3}, a.data()}, {"b", {}, b.data()}}, {{"format", "pt"}});
  llm::SafetensorsReader r(path);
  EXPECT_EQ(r.header().data_start % 8, 0u);  // header padded to an 8-byte boundary
  EXPECT_EQ(r.header().metadata.at("format"), "pt");
  std::vector<float> got(6);
  r.read_f32(*r.header().find("a"), got.data());
  EXPECT_EQ(got, a);
  EXPECT_EQ(r.header().find("b")->shape.size(), 0u);  // a scalar has an empty shape and one element
  r.read_f32(*r.header().find("b"), got.data());
  EXPECT_EQ(got[0], -7.0f);
  EXPECT_FALSE(wt::read_bytes(path + ".tmp").size());  // the temporary is gone
  // A truncated copy of the written file is rejected by the file reader, naming the file.
  std::string bytes = wt::read_bytes(path);
  wt::write_bytes(dir + "/cut.safetensors", bytes.substr(0, bytes.size() - 3));
  try {
    llm::SafetensorsReader bad(dir + "/cut.safetensors");
    FAIL() << "truncated file accepted";
  } catch (const llm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
  }
}
