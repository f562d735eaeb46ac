#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/prompt_encoder.h"
#include "pipeline/components.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

class TextEncoderFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    folder_ = std::make_unique<sdtune::io::ModelFiles>(data_path(GetParam() + "/pipeline"));
    text_ = sdtune::pipeline::load_text_components(*folder_, {});
    ref_ = sdtune::io::read_all_tensors(data_path(GetParam() + "/ref/text_encoder.safetensors"));
  }
  std::unique_ptr<sdtune::io::ModelFiles> folder_;
  sdtune::pipeline::TextComponents text_;
  sdtune::io::TensorMap ref_;
};

TEST_P(TextEncoderFixture, LastHiddenStateEqualsTransformers) {
  torch::NoGradGuard no_grad;
  const auto out = text_.encoder->forward(ref_.at("input_ids"));
  EXPECT_LT(relative_error(out, ref_.at("last_hidden_state")), 1e-5);
  EXPECT_LT(relative_error(text_.encoder->pooled(out, ref_.at("input_ids")), ref_.at("pooler_output")), 1e-5);
}

TEST_P(TextEncoderFixture, ClipSkipEqualsPenultimateLayer) {
  torch::NoGradGuard no_grad;
  const auto ids = ref_.at("input_ids").slice(0, 0, 2);
  const int64_t layers = text_.encoder->config().num_hidden_layers;
  EXPECT_LT(relative_error(text_.encoder->hidden_states(ids, layers - 1), ref_.at("penultimate_hidden_state_prompts01")), 1e-5);
  EXPECT_LT(relative_error(text_.encoder->forward(ids, 1), ref_.at("penultimate_final_ln_prompts01")), 1e-5);
  EXPECT_THROW(text_.encoder->forward(ids, layers), sdtune::Error);
}

TEST_P(TextEncoderFixture, PromptEmbedsFromTextEqualTransformers) {
  const auto prompt = sdtune::text::tokenize_prompt(*text_.tokenizer, "photo of (lora-misato-token), smiling", {});
  const auto embeds = sdtune::pipeline::encode_prompt(text_.encoder, prompt, 0);
  EXPECT_EQ(embeds.sizes(), torch::IntArrayRef({1, 77, 32}));
  EXPECT_LT(relative_error(embeds[0], ref_.at("last_hidden_state")[0]), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Variants, TextEncoderFixture, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(PromptEncoder, A1111WeightsScaleTokensAndKeepTheMean) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto text = sdtune::pipeline::load_text_components(folder, {});
  sdtune::text::PromptOptions a1111;
  a1111.weighting = sdtune::text::PromptWeighting::A1111;
  const auto weighted = sdtune::text::tokenize_prompt(*text.tokenizer, "a (castle:1.5) on a hill", a1111);
  const auto plain = sdtune::text::tokenize_prompt(*text.tokenizer, "a castle on a hill", {});
  ASSERT_EQ(weighted.chunks[0].ids, plain.chunks[0].ids);
  const auto z = sdtune::pipeline::encode_prompt(text.encoder, plain, 0);
  const auto zw = sdtune::pipeline::encode_prompt(text.encoder, weighted, 0);
  // A1111: z * w, then rescaled so the mean is unchanged.
  const auto w = torch::tensor(weighted.chunks[0].weights).view({1, 77, 1});
  const auto expected = z * w * (z.mean() / (z * w).mean());
  EXPECT_LT(relative_error(zw, expected), 1e-6);
  EXPECT_NEAR(zw.mean().item<double>(), z.mean().item<double>(), 1e-6);
  EXPECT_GT((zw - z).abs().max().item<double>(), 1e-3);
}

TEST(PromptEncoder, LongPromptsConcatenateChunks) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  auto text = sdtune::pipeline::load_text_components(folder, {});
  std::string prompt;
  for (int i = 0; i < 30; ++i) prompt += "castle, hill, ";
  const auto chunks = sdtune::text::tokenize_prompt(*text.tokenizer, prompt, {});
  ASSERT_GE(chunks.chunks.size(), 2u);
  const auto z = sdtune::pipeline::encode_prompt(text.encoder, chunks, 0);
  EXPECT_EQ(z.size(1), int64_t(77 * chunks.chunks.size()));
  torch::NoGradGuard no_grad;
  const auto second = text.encoder->forward(torch::tensor(chunks.chunks[1].ids).view({1, 77}));
  EXPECT_LT(relative_error(z.slice(1, 77, 154), second), 1e-6);
}

}  // namespace
