#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

using sdtune::io::DType;
using sdtune::io::SafetensorsFile;

namespace {

// Writes raw bytes: an 8-byte length (the header's own unless `declared_length` is not -1;
// other negative values wrap to huge unsigned lengths), the
// header text, then `data_bytes` bytes of zeros.
std::string write_raw(const sdtune::test::TempDir& dir, const std::string& header, size_t data_bytes,
                      long long declared_length = -1) {
  const std::string path = dir.file("file.safetensors");
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = declared_length == -1 ? header.size() : uint64_t(declared_length);
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
  return path;
}

TEST(Safetensors, RoundTripKeepsBytesShapesDtypesAndMetadata) {
  sdtune::test::TempDir dir;
  const std::vector<float> f32{1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  const std::vector<uint16_t> f16{0x3c00, 0xc000};       // 1.0, -2.0
  const std::vector<uint16_t> bf16{0x3f80, 0x4000, 0};   // 1.0, 2.0, 0
  const int64_t scalar = 4;
  const std::string path = dir.file("t.safetensors");
  sdtune::io::write_safetensors(path,
                                {{"b.f32", DType::F32, {2, 3}, f32.data(), f32.size() * 4},
                                 {"a.f16", DType::F16, {2}, f16.data(), 4},
                                 {"c.bf16", DType::BF16, {3, 1}, bf16.data(), 6},
                                 {"alpha", DType::I64, {}, &scalar, 8},
                                 {"empty", DType::F32, {0, 4}, nullptr, 0}},
                                {{"format", "pt"}, {"note", "ünïcode"}});
  SafetensorsFile file(path);
  ASSERT_EQ(file.tensors().size(), 5u);
  EXPECT_EQ(file.tensors()[0].name, "a.f16");  // sorted by name
  EXPECT_EQ(file.metadata().at("note"), "ünïcode");
  const auto& b = file.at("b.f32");
  EXPECT_EQ(b.dtype, DType::F32);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(file.data(b), f32.data(), 24), 0);
  EXPECT_EQ(file.at("alpha").shape.size(), 0u);
  int64_t alpha = 0;  // at byte 4 of the data: copied out, an int64_t read there would be misaligned
  std::memcpy(&alpha, file.data(file.at("alpha")), 8);
  EXPECT_EQ(alpha, 4);
  EXPECT_EQ(std::memcmp(file.data(file.at("c.bf16")), bf16.data(), 6), 0);
  EXPECT_EQ(file.at("empty").numel(), 0);
  // data starts 8-byte aligned
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file.data(file.tensors()[0])) % 8, 0u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp-" + std::to_string(::getpid())));
}

TEST(Safetensors, ReadsEveryFixtureFile) {
  for (const char* f : {"tiny-sd2/pipeline/unet/diffusion_pytorch_model.safetensors",
                        "tiny-sd2/lora_kohya/lora_kohya.safetensors", "tiny-sd1/ref/unet.safetensors",
                        "tiny-sd2/ref/train_step.safetensors"}) {
    SafetensorsFile file(sdtune::test::data_path(f));
    EXPECT_GT(file.tensors().size(), 0u) << f;
  }
  SafetensorsFile kohya(sdtune::test::data_path("tiny-sd2/lora_kohya/lora_kohya.safetensors"));
  const auto* alpha = kohya.find("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha");
  ASSERT_NE(alpha, nullptr);
  EXPECT_EQ(alpha->dtype, DType::I64);
  EXPECT_TRUE(alpha->shape.empty());
}

TEST(Safetensors, WriterRejectsInconsistentTensors) {
  sdtune::test::TempDir dir;
  const float x[2] = {1, 2};
  EXPECT_THROW(sdtune::io::write_safetensors(dir.file("x.safetensors"), {{"x", DType::F32, {3}, x, 8}}), sdtune::Error);
  EXPECT_THROW(sdtune::io::write_safetensors(dir.file("x.safetensors"),
                                             {{"x", DType::F32, {2}, x, 8}, {"x", DType::F32, {2}, x, 8}}),
               sdtune::Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.safetensors")));
}

// Hostile or broken files: each must be refused with an Error naming the file and the problem.
struct HostileCase {
  const char* name;
  std::string header;
  size_t data_bytes;
  long long declared_length;
  const char* expected;  // part of the message
};

void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

class HostileSafetensors : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileSafetensors, RefusedWithClearError) {
  const auto& c = GetParam();
  sdtune::test::TempDir dir;
  const std::string path = write_raw(dir, c.header, c.data_bytes, c.declared_length);
  try {
    SafetensorsFile file(path);
    FAIL() << c.name << " was accepted";
  } catch (const sdtune::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.name << ": " << message;
  }
}

const std::string kOk = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

INSTANTIATE_TEST_SUITE_P(
    Table, HostileSafetensors,
    ::testing::Values(
        HostileCase{"header_past_end", "{" + kOk + "}", 8, 4096, "runs past the end"},
        HostileCase{"huge_header_length", "{}", 0, (1LL << 40), "exceeds the limit"},
        HostileCase{"max_u64_length", "{}", 0, -2, "exceeds the limit"},
        HostileCase{"not_json", "{\"w\": {\"dtype\": ", 0, -1, "invalid JSON"},
        HostileCase{"not_object", "[1,2,3]", 0, -1, "not a JSON object"},
        HostileCase{"entry_not_object", R"({"w": 5})", 0, -1, "tensor \"w\": header entry is not an object"},
        HostileCase{"unknown_dtype", R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", 1, -1,
                    "tensor \"w\": unsupported dtype"},
        HostileCase{"negative_dim", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, -1,
                    "tensor \"w\": shape dimension"},
        HostileCase{"float_dim", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4, -1,
                    "tensor \"w\": shape dimension"},
        HostileCase{"overflowing_shape",
                    R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", 4, -1,
                    "tensor \"w\": shape is so large"},
        HostileCase{"bytes_mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, -1,
                    "tensor \"w\": 8 bytes of data for dtype F32"},
        HostileCase{"offsets_outside", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, -1,
                    "tensor \"w\": data [0, 8) lies outside"},
        HostileCase{"reversed_offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, -1,
                    "tensor \"w\": data_offsets end before"},
        HostileCase{"huge_offsets",
                    R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 1, -1,
                    "too large"},
        HostileCase{"overlap",
                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    12, -1, "tensor \"b\": data overlaps"},
        HostileCase{"gap",
                    R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                    12, -1, "tensor \"b\": gap of 4 bytes"},
        HostileCase{"trailing_bytes", "{" + kOk + "}", 16, -1, "bytes after the last tensor"},
        HostileCase{"metadata_not_strings", R"({"__metadata__":{"x":1}})", 0, -1, "__metadata__ value \"x\""},
        HostileCase{"missing_offsets", R"({"w":{"dtype":"F32","shape":[1]}})", 4, -1, "tensor \"w\": \"data_offsets\""},
        HostileCase{"deep_nesting", std::string(100000, '[') + std::string(100000, ']'), 0, -1, "nested deeper than 64 levels"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Safetensors, TooSmallAndMissingFiles) {
  sdtune::test::TempDir dir;
  std::ofstream(dir.file("tiny.safetensors")) << "abc";
  EXPECT_THROW(SafetensorsFile(dir.file("tiny.safetensors")), sdtune::Error);
  EXPECT_THROW(SafetensorsFile(dir.file("absent.safetensors")), sdtune::Error);
  EXPECT_THROW(SafetensorsFile(dir.path.string()), sdtune::Error);  // a folder
}

TEST(Safetensors, TruncatedRealFileIsRefused) {
  sdtune::test::TempDir dir;
  const std::string src = sdtune::test::data_path("tiny-sd2/pipeline/vae/diffusion_pytorch_model.safetensors");
  const auto size = std::filesystem::file_size(src);
  std::filesystem::copy_file(src, dir.file("cut.safetensors"));
  std::filesystem::resize_file(dir.file("cut.safetensors"), size - 100);
  try {
    SafetensorsFile file(dir.file("cut.safetensors"));
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
