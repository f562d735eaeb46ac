#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "dev/random_model.h"
#include "models/clip_text.h"
#include "models/unet/unet_config.h"
#include "models/vae/autoencoder_kl.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"

namespace {

TEST(RandomModel, PresetConfigsDescribeTheRealArchitectures) {
  const auto sd2 = sdtune::models::UNetConfig::from_json(sdtune::dev::preset_config("sd2", "unet"), "sd2");
  EXPECT_EQ(sd2.heads, (std::vector<int64_t>{5, 10, 20, 20}));
  EXPECT_EQ(sd2.cross_attention_dim[0], 1024);
  EXPECT_TRUE(sd2.use_linear_projection);
  const auto sd15 = sdtune::models::UNetConfig::from_json(sdtune::dev::preset_config("sd15", "unet"), "sd15");
  EXPECT_EQ(sd15.heads, (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_FALSE(sd15.use_linear_projection);
  const auto te = sdtune::models::ClipTextConfig::from_json(sdtune::dev::preset_config("sd2", "text_encoder"), "te");
  EXPECT_EQ(te.num_hidden_layers, 23);
  EXPECT_EQ(te.hidden_act, "gelu");
  EXPECT_EQ(sdtune::dev::preset_config("sd2", "scheduler")["prediction_type"], "v_prediction");
  EXPECT_THROW(sdtune::dev::preset_config("sdxl", "unet"), sdtune::Error);
}

TEST(RandomModel, ParameterCountsMatchStableDiffusion2) {
  // Counting needs no weights: build the modules and sum their shapes (SD2's published sizes).
  torch::NoGradGuard no_grad;
  auto count = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  sdtune::models::AutoencoderKL vae(sdtune::models::VaeConfig::from_json(sdtune::dev::preset_config("sd2", "vae"), "vae"));
  EXPECT_EQ(count(*vae), 83653863);
  sdtune::models::ClipTextModel te(sdtune::models::ClipTextConfig::from_json(sdtune::dev::preset_config("sd2", "text_encoder"), "te"));
  EXPECT_EQ(count(*te), 340387840);
}

TEST(RandomModel, TokenizerHasTheRealVocabularySize) {
  sdtune::test::TempDir dir;
  sdtune::dev::write_random_tokenizer(dir.path.string(), "!");
  sdtune::text::ClipTokenizer tok(dir.path.string());
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 0);
  const auto ids = tok.encode_padded("a photo of (lora-misato-token)!");
  EXPECT_EQ(ids.size(), 77u);
  std::vector<int64_t> inner(ids.begin() + 1, std::find(ids.begin() + 1, ids.end(), tok.eos_id()));
  EXPECT_EQ(tok.decode(inner), "a photo of ( lora - misato - token ) !");  // CLIP decodes word by word
}

}  // namespace
