#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "core/error.h"
#include "io/tensor_io.h"
#include "test_util.h"

namespace {

TEST(TensorIo, RoundTripAllDtypesBitExact) {
  sdtune::test::TempDir dir;
  torch::manual_seed(0);
  sdtune::io::TensorMap tensors{
      {"f32", torch::randn({3, 5})},
      {"f16", torch::randn({4}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"i64", torch::tensor({int64_t(1), int64_t(-7)})},
      {"i32", torch::tensor({3, 4, 5}, torch::kInt)},
      {"scalar", torch::tensor(8.0f)},
      {"strided", torch::randn({4, 6}).t()},  // non-contiguous input is written in logical order
  };
  const std::string path = dir.file("r.safetensors");
  sdtune::io::save_tensors(path, tensors, {{"k", "v"}});
  const auto back = sdtune::io::read_all_tensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
  EXPECT_EQ(sdtune::io::SafetensorsFile(path).metadata().at("k"), "v");
}

TEST(TensorIo, ConvertsOnLoad) {
  sdtune::test::TempDir dir;
  const auto half = torch::tensor({1.5f, -2.25f}).to(torch::kHalf);
  sdtune::io::save_tensors(dir.file("h.safetensors"), {{"x", half}});
  sdtune::io::SafetensorsFile file(dir.file("h.safetensors"));
  const auto as_float = sdtune::io::read_tensor(file, "x", torch::kFloat);
  EXPECT_EQ(as_float.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(as_float, torch::tensor({1.5f, -2.25f})));
  const auto as_bf16 = sdtune::io::read_all_tensors(dir.file("h.safetensors"), torch::kBFloat16).at("x");
  EXPECT_EQ(as_bf16.scalar_type(), torch::kBFloat16);
}

TEST(TensorIo, ZeroCopyTensorsCanBeWrittenWithoutChangingTheFile) {
  sdtune::test::TempDir dir;
  sdtune::io::save_tensors(dir.file("w.safetensors"), {{"x", torch::ones({16})}});
  {
    sdtune::io::SafetensorsFile file(dir.file("w.safetensors"));
    auto t = sdtune::io::read_tensor(file, "x");
    t.add_(1);  // copy-on-write pages: only this process sees it
    EXPECT_EQ(t.sum().item<float>(), 32.f);
  }
  EXPECT_TRUE(torch::equal(sdtune::io::read_all_tensors(dir.file("w.safetensors")).at("x"), torch::ones({16})));
}

TEST(TensorIo, TensorOutlivesItsFileObject) {
  torch::Tensor t;
  {
    sdtune::io::SafetensorsFile file(sdtune::test::data_path("tiny-sd2/ref/unet.safetensors"));
    t = sdtune::io::read_tensor(file, "out");
  }
  EXPECT_EQ(t.sizes(), torch::IntArrayRef({2, 4, 8, 6}));
  EXPECT_TRUE(std::isfinite(t.sum().item<float>()));
}

TEST(TensorIo, LoadModuleWeightsChecksNamesAndShapes) {
  sdtune::test::TempDir dir;
  torch::nn::Linear linear(3, 2);
  sdtune::io::save_tensors(dir.file("ok.safetensors"), {{"p.weight", torch::ones({2, 3})}, {"p.bias", torch::zeros({2})}});
  sdtune::io::load_module_weights(*linear, sdtune::io::SafetensorsSet({dir.file("ok.safetensors")}), "p.");
  EXPECT_TRUE(torch::equal(linear->weight, torch::ones({2, 3})));

  sdtune::io::save_tensors(dir.file("shape.safetensors"), {{"p.weight", torch::ones({3, 3})}, {"p.bias", torch::zeros({2})}});
  try {
    sdtune::io::load_module_weights(*linear, sdtune::io::SafetensorsSet({dir.file("shape.safetensors")}), "p.");
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"p.weight\" has shape [3, 3]"), std::string::npos) << e.what();
  }
  sdtune::io::save_tensors(dir.file("missing.safetensors"), {{"p.weight", torch::ones({2, 3})}});
  try {
    sdtune::io::load_module_weights(*linear, sdtune::io::SafetensorsSet({dir.file("missing.safetensors")}), "p.");
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor \"p.bias\""), std::string::npos) << e.what();
  }
}

}  // namespace
