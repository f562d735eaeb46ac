#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/model_families.h"
#include "io/tokenizer_files.h"
#include "models/clip_text.h"
#include "models/unet/unet_config.h"
#include "models/vae/autoencoder_kl.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"

namespace {

TEST(ModelFamilies, ConfigsDescribeTheRealArchitectures) {
  const auto sd2 = sdtune::models::UNetConfig::from_json(sdtune::io::model_family("sd2", "test").unet, "sd2");
  EXPECT_EQ(sd2.heads, (std::vector<int64_t>{5, 10, 20, 20}));
  EXPECT_EQ(sd2.cross_attention_dim[0], 1024);
  EXPECT_TRUE(sd2.use_linear_projection);
  const auto sd15 = sdtune::models::UNetConfig::from_json(sdtune::io::model_family("sd15", "test").unet, "sd15");
  EXPECT_EQ(sd15.heads, (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_FALSE(sd15.use_linear_projection);
  const auto te = sdtune::models::ClipTextConfig::from_json(sdtune::io::model_family("sd2", "test").text_encoder, "te");
  EXPECT_EQ(te.num_hidden_layers, 23);
  EXPECT_EQ(te.hidden_act, "gelu");
  EXPECT_EQ(sdtune::io::model_family("sd2", "test").scheduler["prediction_type"], "v_prediction");
  EXPECT_THROW(sdtune::io::model_family("sdxl", "test"), sdtune::Error);
  EXPECT_EQ(sdtune::io::model_family("sd2-inpainting", "test").unet["in_channels"], 9);
}

TEST(RandomModel, ParameterCountsMatchStableDiffusion2) {
  // Counting needs no weights: build the modules and sum their shapes (SD2's published sizes).
  torch::NoGradGuard no_grad;
  auto count = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  sdtune::models::AutoencoderKL vae(sdtune::models::VaeConfig::from_json(sdtune::io::model_family("sd2", "test").vae, "vae"));
  EXPECT_EQ(count(*vae), 83653863);
  sdtune::models::ClipTextModel te(sdtune::models::ClipTextConfig::from_json(sdtune::io::model_family("sd2", "test").text_encoder, "te"));
  EXPECT_EQ(count(*te), 340387840);
}

TEST(ModelFamilies, ShippedTokenizerIsClipsBpe) {
  sdtune::text::ClipTokenizer tok(sdtune::io::shipped_clip_tokenizer("!"));
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 0);  // SD 2 pads with "!"
  const auto ids = tok.encode_padded("a photo of a cat");
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 7), (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(ids[7], 0);
  sdtune::text::ClipTokenizer sd1(sdtune::io::shipped_clip_tokenizer("<|endoftext|>"));
  EXPECT_EQ(sd1.encode_padded("a photo of a cat")[7], 49407);
  const auto trigger = tok.tokenize("(lora-misato-token)");
  std::vector<int64_t> trigger_ids;
  for (const auto& t : trigger) trigger_ids.push_back(t.id);
  EXPECT_EQ(tok.decode(trigger_ids), "( lora - misato - token )");  // CLIP decodes word by word
}

}  // namespace
