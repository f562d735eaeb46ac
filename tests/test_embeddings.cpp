// Textual-inversion embeddings: token ids and prompt embeddings equal diffusers' load_textual_inversion
// (tests/data/embeddings, made by scripts/make_embedding_fixtures.py), and the files people have are read
// or refused clearly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "embeddings/textual_inversion.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"
#include "pipeline/prompt_encoder.h"
#include "test_util.h"
#include "torch_test_util.h"

namespace fs = std::filesystem;
using sdtune::test::data_path;
using sdtune::test::error_of;
using sdtune::test::relative_error;

namespace {

const char* const kPrompts[] = {"photo of <cat-toy> in EasyNegative style", "EasyNegative,<cat-toy>!EasyNegative",
                                "EASYNEGATIVE portrait, xEasyNegativey"};
const char* const kNegative = "EasyNegative, blurry";

class EmbeddingFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(EmbeddingFixture, IdsAndPromptEmbedsEqualLoadTextualInversion) {
  const auto refs = sdtune::io::read_all_tensors(data_path("embeddings/references.safetensors"));
  auto text = sdtune::pipeline::load_text_components(sdtune::io::ModelFiles(data_path(GetParam() + "/pipeline")), {});
  const std::vector<sdtune::embeddings::Embedding> loaded{
      sdtune::embeddings::read_embedding(data_path("embeddings/EasyNegative.safetensors")),                // token: the file name
      sdtune::embeddings::read_embedding(data_path("embeddings/cat-toy/learned_embeds.safetensors"))};  // token: the key
  EXPECT_EQ(loaded[0].token, "EasyNegative");
  EXPECT_EQ(loaded[0].vectors.size(0), 3);
  EXPECT_EQ(loaded[1].token, "<cat-toy>");
  sdtune::embeddings::add_embeddings(loaded, *text.tokenizer, text.encoder);
  EXPECT_EQ(text.tokenizer->decode({629, 630, 631, 632}), "EasyNegativeEasyNegative_1EasyNegative_2<cat-toy>");
  auto check = [&](const std::string& prompt, const std::string& ids_key, const std::string& embeds_key) {
    const auto tokens = sdtune::text::tokenize_prompt(*text.tokenizer, prompt, {});
    ASSERT_EQ(tokens.chunks.size(), 1u);
    EXPECT_EQ(tokens.chunks[0].ids, std::vector<int64_t>(refs.at(ids_key).data_ptr<int64_t>(), refs.at(ids_key).data_ptr<int64_t>() + 77)) << prompt;
    torch::NoGradGuard no_grad;
    EXPECT_LT(relative_error(sdtune::pipeline::encode_prompt(text.encoder, tokens, 0), refs.at(embeds_key)), 1e-4) << prompt;
  };
  for (int i = 0; i < 3; ++i) check(kPrompts[i], GetParam() + ".ids_" + std::to_string(i), GetParam() + ".prompt_embeds_" + std::to_string(i));
  check(kNegative, GetParam() + ".negative_ids", GetParam() + ".negative_embeds");
}

INSTANTIATE_TEST_SUITE_P(Variants, EmbeddingFixture, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(Embeddings, FilesThatAreNoEmbeddingForThisModelAreRefused) {
  sdtune::test::TempDir dir;
  auto text = sdtune::pipeline::load_text_components(sdtune::io::ModelFiles(data_path("tiny-sd2/pipeline")), {});
  auto write = [&](const std::string& name, const sdtune::io::TensorMap& tensors) {
    sdtune::io::save_tensors(dir.file(name), tensors);
    return dir.file(name);
  };
  std::ofstream(dir.file("old.pt"), std::ios::binary) << std::string("PK\x03\x04", 4) << "archive/data.pkl";
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(dir.file("old.pt")); }).find("old.pt"), std::string::npos);
  const std::string sdxl = write("xl.safetensors", {{"clip_l", torch::zeros({2, 768})}, {"clip_g", torch::zeros({2, 1280})}});
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(sdxl); }).find("SDXL embedding"), std::string::npos);
  const std::string two = write("two.safetensors", {{"a", torch::zeros({32})}, {"b", torch::zeros({32})}});
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(two); }).find("not a textual-inversion embedding"), std::string::npos);
  const std::string nan = write("nan.safetensors", {{"emb_params", torch::full({1, 32}, NAN)}});
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(nan); }).find("NaN"), std::string::npos);
  const std::string many = write("many.safetensors", {{"emb_params", torch::zeros({76, 32})}});
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(many); }).find("76 vectors"), std::string::npos);
  const std::string wide = write("wide.safetensors", {{"emb_params", torch::zeros({1, 768})}});
  const std::string message = error_of([&] { sdtune::embeddings::add_embeddings({sdtune::embeddings::read_embedding(wide)}, *text.tokenizer, text.encoder); });
  EXPECT_NE(message.find("wide.safetensors: has vectors of width 768; this model's text encoder takes 32"), std::string::npos) << message;
  // A token that is a vocabulary entry would change every prompt that has the word (diffusers refuses it too).
  const std::string plain = write("plain.safetensors", {{"emb_params", torch::zeros({1, 32})}});
  const std::string taken = error_of([&] { sdtune::embeddings::add_embeddings({sdtune::embeddings::read_embedding(plain, "st")}, *text.tokenizer, text.encoder); });
  EXPECT_NE(taken.find("already in the tokenizer's vocabulary"), std::string::npos) << taken;
  const auto once = sdtune::embeddings::read_embedding(plain, "Twice");
  sdtune::embeddings::add_embeddings({once}, *text.tokenizer, text.encoder);
  EXPECT_NE(error_of([&] { sdtune::embeddings::add_embeddings({once}, *text.tokenizer, text.encoder); }).find("given twice"), std::string::npos);
  EXPECT_EQ(sdtune::embeddings::parse_embedding_flag("a/b.safetensors:Style"), std::make_pair(std::string("a/b.safetensors"), std::string("Style")));
  EXPECT_EQ(sdtune::embeddings::parse_embedding_flag(plain), std::make_pair(plain, std::string()));
}

TEST(Embeddings, FolderLoadsOnlyWhatThePromptsUseAndStaysInside) {
  sdtune::test::TempDir dir, outside;
  fs::create_directories(dir.path / "negative");
  fs::copy_file(data_path("embeddings/EasyNegative.safetensors"), dir.path / "negative" / "EasyNegative.safetensors");
  std::ofstream(dir.file("badhands.pt")) << "pickle";
  sdtune::io::save_tensors(outside.file("elsewhere.safetensors"), {{"emb_params", torch::zeros({1, 32})}});
  fs::create_symlink(outside.file("elsewhere.safetensors"), dir.path / "elsewhere.safetensors");
  const std::string folder = dir.path.string();
  EXPECT_EQ(sdtune::embeddings::embeddings_used(folder, {"a cat", "blurry"}), std::vector<std::string>{});
  EXPECT_EQ(sdtune::embeddings::embeddings_used(folder, {"a cat", "easynegative, blurry"}),
            std::vector<std::string>{(dir.path / "negative" / "EasyNegative.safetensors").string()});
  const auto pickled = sdtune::embeddings::embeddings_used(folder, {"badhands"});
  ASSERT_EQ(pickled.size(), 1u);
  EXPECT_NE(error_of([&] { sdtune::embeddings::read_embedding(pickled[0]); }).find("badhands.pt"), std::string::npos);
  EXPECT_NE(error_of([&] { sdtune::embeddings::embeddings_used(folder, {"elsewhere"}); }).find("leads out of --embeddings_dir"), std::string::npos);
  fs::copy_file(data_path("embeddings/EasyNegative.safetensors"), dir.path / "EasyNegative.safetensors");
  EXPECT_NE(error_of([&] { sdtune::embeddings::embeddings_used(folder, {"EasyNegative"}); }).find("twice"), std::string::npos);
  EXPECT_NE(error_of([&] { sdtune::embeddings::embeddings_used(dir.file("missing"), {"x"}); }).find("is not a folder"), std::string::npos);
}

}  // namespace
