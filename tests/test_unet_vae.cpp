#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "models/vae/tiling.h"
#include "pipeline/components.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

class ModelFixture : public ::testing::TestWithParam<std::string> {
 protected:
  sdtune::io::ModelFiles folder() const { return sdtune::io::ModelFiles(data_path(GetParam() + "/pipeline")); }
  sdtune::io::TensorMap ref(const std::string& name) const {
    return sdtune::io::read_all_tensors(data_path(GetParam() + "/ref/" + name + ".safetensors"));
  }
};

// Both ways convolutions run: aten (no-grad, as in training) and oneDNN (inference mode).
TEST_P(ModelFixture, UNetEqualsDiffusersForIntegerAndFloatTimesteps) {
  auto unet = sdtune::pipeline::load_unet(folder(), {});
  const auto r = ref("unet");
  for (const bool inference : {false, true}) {
    SCOPED_TRACE(inference ? "inference mode" : "no-grad mode");
    torch::InferenceMode mode(inference);
    torch::NoGradGuard no_grad;
    const auto out = unet->forward(r.at("sample"), r.at("timestep"), r.at("encoder_hidden_states"));
    EXPECT_LT(relative_error(out, r.at("out")), 1e-5);
    const auto out_b = unet->forward(r.at("sample_b"), r.at("timestep_b"), r.at("encoder_hidden_states_b"));
    EXPECT_LT(relative_error(out_b, r.at("out_b")), 1e-5);
    // Batch 1 of case A equals row 0 of the batch-2 output.
    const auto single = unet->forward(r.at("sample").slice(0, 0, 1), r.at("timestep").slice(0, 0, 1),
                                      r.at("encoder_hidden_states").slice(0, 0, 1));
    EXPECT_LT(relative_error(single, r.at("out").slice(0, 0, 1)), 1e-5);
  }
}

// The layout of CUDA runs: convolution weights and the input stored NHWC, every activation after a
// convolution channels-last, through aten's convolutions.
TEST_P(ModelFixture, ChannelsLastUNetAndVaeEqualDiffusers) {
  sdtune::pipeline::LoadOptions options;
  options.channels_last = true;
  auto unet = sdtune::pipeline::load_unet(folder(), options);
  auto vae = sdtune::pipeline::load_vae(folder(), options);
  const auto nhwc = [](const torch::Tensor& t) { return t.contiguous(torch::MemoryFormat::ChannelsLast); };
  const auto u = ref("unet"), v = ref("vae");
  for (const bool inference : {false, true}) {
    SCOPED_TRACE(inference ? "inference mode" : "no-grad mode");
    torch::InferenceMode mode(inference);
    torch::NoGradGuard no_grad;
    const auto out = unet->forward(nhwc(u.at("sample")), u.at("timestep"), u.at("encoder_hidden_states"));
    EXPECT_LT(relative_error(out, u.at("out")), 1e-5);
    EXPECT_LT(relative_error(vae->decode(nhwc(v.at("decode_in"))), v.at("decode_out")), 1e-5);
    EXPECT_LT(relative_error(vae->encode(nhwc(v.at("encode_in"))).mean, v.at("encode_mean")), 1e-5);
  }
}

TEST_P(ModelFixture, VaeDecodeAndEncodeEqualDiffusers) {
  auto vae = sdtune::pipeline::load_vae(folder(), {});
  const auto r = ref("vae");
  {
    torch::InferenceMode inference;  // the oneDNN convolutions of generation
    EXPECT_LT(relative_error(vae->decode(r.at("decode_in")), r.at("decode_out")), 1e-5);
  }
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_error(vae->decode(r.at("decode_in")), r.at("decode_out")), 1e-5);
  const auto dist = vae->encode(r.at("encode_in"));
  EXPECT_LT(relative_error(dist.mean, r.at("encode_mean")), 1e-5);
  EXPECT_LT(relative_error(dist.logvar, r.at("encode_logvar")), 1e-5);
  EXPECT_LT(relative_error(dist.std, r.at("encode_std")), 1e-5);
  // sample = mean + std * randn(generator)
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto noise = at::randn(dist.mean.sizes(), at::make_generator<at::CPUGeneratorImpl>(7), torch::kFloat);
  EXPECT_TRUE(torch::allclose(dist.sample(gen), dist.mean + dist.std * noise));
}

TEST_P(ModelFixture, TiledVaeEqualsWholeImageWhenOneTileCoversIt) {
  torch::NoGradGuard no_grad;
  auto vae = sdtune::pipeline::load_vae(folder(), {});
  const auto r = ref("vae");
  const int64_t big = 4 * std::max(r.at("encode_in").size(2), r.at("encode_in").size(3));
  sdtune::models::TilingOptions one_tile{big};
  EXPECT_LT(relative_error(vae->tiled_decode(r.at("decode_in"), one_tile), r.at("decode_out")), 1e-5);
  EXPECT_LT(relative_error(vae->tiled_encode(r.at("encode_in"), one_tile).mean, r.at("encode_mean")), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelFixture, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(TiledVae, StitchingReassemblesAPositionIndependentMap) {
  // A map that treats every pixel alike (x2 nearest upsampling) must come back exactly, seams and
  // borders included: overlapping tiles then agree, so blending them changes nothing.
  torch::manual_seed(3);
  const auto x = torch::randn({1, 2, 40, 28});
  auto upsample = [](const torch::Tensor& t) {
    return torch::nn::functional::interpolate(
        t, torch::nn::functional::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
  };
  const auto tiled = sdtune::models::run_tiled(x, 16, 32, 0.25, upsample);
  ASSERT_EQ(tiled.sizes(), upsample(x).sizes());
  EXPECT_TRUE(torch::allclose(tiled, upsample(x), 1e-6, 1e-6));  // a*(1-w) + a*w rounds
}

TEST(TiledVae, SeveralTilesGiveTheWholeImageShape) {
  torch::NoGradGuard no_grad;
  auto vae = sdtune::pipeline::load_vae(sdtune::io::ModelFiles(data_path("tiny-sd1/pipeline")), {});
  torch::manual_seed(3);
  const auto latents = torch::randn({1, 4, 24, 20});  // tiles of 8x8 latents with overlap
  const auto tiled = vae->tiled_decode(latents, {16, 0.25});
  EXPECT_EQ(tiled.sizes(), vae->decode(latents).sizes());
  EXPECT_TRUE(torch::isfinite(tiled).all().item<bool>());
  EXPECT_EQ(vae->tiled_encode(tiled, {16, 0.25}).mean.sizes(), latents.sizes());
}

TEST(UNetConfig, RejectsUnsupportedArchitecturesByName) {
  auto config = sdtune::io::read_json_file(data_path("tiny-sd2/pipeline/unet/config.json"));
  config["addition_embed_type"] = "text_time";
  try {
    sdtune::models::UNetConfig::from_json(config, "unet/config.json");
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("addition_embed_type"), std::string::npos) << e.what();
  }
  config["addition_embed_type"] = nullptr;
  config["attention_head_dim"] = {2, 4, 8};
  EXPECT_THROW(sdtune::models::UNetConfig::from_json(config, "unet/config.json"), sdtune::Error);
}

TEST(UNet, WeightsOfAnotherConfigAreRefused) {
  sdtune::test::TempDir dir;
  std::filesystem::copy(data_path("tiny-sd2/pipeline"), dir.path, std::filesystem::copy_options::recursive);
  std::filesystem::copy_file(data_path("tiny-sd1/pipeline/unet/diffusion_pytorch_model.safetensors"),
                             dir.file("unet/diffusion_pytorch_model.safetensors"),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THROW(sdtune::pipeline::load_unet(sdtune::io::ModelFiles(dir.path.string()), {}), sdtune::Error);
}

}  // namespace
