#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "io/json_file.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_chunks.h"

using sdtune::text::ClipTokenizer;
using sdtune::test::data_path;

namespace {

class TokenizerFixture : public ::testing::TestWithParam<std::string> {
 protected:
  std::string variant() const { return GetParam(); }
  ClipTokenizer tokenizer() const { return ClipTokenizer(data_path(variant() + "/pipeline/tokenizer")); }
  sdtune::io::Json manifest() const { return sdtune::io::read_json_file(data_path(variant() + "/ref/manifest.json")); }
};

TEST_P(TokenizerFixture, PaddedIdsEqualDiffusers) {
  const auto tok = tokenizer();
  const auto m = manifest();
  const auto prompts = m["constants"]["PROMPTS"];
  const auto expected = sdtune::test::read_int64_rows(data_path(variant() + "/ref/tokenizer_ids.safetensors"), "input_ids");
  ASSERT_EQ(prompts.size(), expected.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(tok.encode_padded(prompts[i].get<std::string>()), expected[i]) << "prompt " << i;
}

TEST_P(TokenizerFixture, UntruncatedIdsAndTokenStringsEqualDiffusers) {
  const auto tok = tokenizer();
  const auto info = manifest()["files"]["ref/tokenizer_ids.safetensors"];
  const auto prompts = info["prompts"];
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> ids{tok.bos_id()};
    std::vector<std::string> strings{"<|startoftext|>"};
    for (const auto& t : tok.tokenize(prompts[i].get<std::string>())) {
      ids.push_back(t.id);
      strings.push_back(t.text);
    }
    ids.push_back(tok.eos_id());
    strings.push_back("<|endoftext|>");
    EXPECT_EQ(ids, info["untruncated_ids"][i].get<std::vector<int64_t>>()) << "prompt " << i;
    if (info.contains("tokens")) {
      EXPECT_EQ(strings, info["tokens"][i].get<std::vector<std::string>>()) << "prompt " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerFixture, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(Tokenizer, PadTokenDiffersBetweenVariants) {
  ClipTokenizer sd1(data_path("tiny-sd1/pipeline/tokenizer"));
  ClipTokenizer sd2(data_path("tiny-sd2/pipeline/tokenizer"));
  EXPECT_EQ(sd1.pad_id(), 628);
  EXPECT_EQ(sd2.pad_id(), 0);
  EXPECT_EQ(sd2.bos_id(), 627);
  EXPECT_EQ(sd2.eos_id(), 628);
  // "!" is the SD2 pad token, so it is split out before BPE and keeps id 0 even inside a word.
  const auto tokens = sd2.tokenize("a!b");
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[1].id, 0);
}

TEST(Tokenizer, DecodeRoundTripsText) {
  ClipTokenizer tok(data_path("tiny-sd1/pipeline/tokenizer"));
  std::vector<int64_t> ids;
  for (const auto& t : tok.tokenize("photo of a Castle, naïve")) ids.push_back(t.id);
  EXPECT_EQ(tok.decode(ids), "photo of a castle , naïve");
}

TEST(Tokenizer, InvalidUtf8IsAnError) {
  ClipTokenizer tok(data_path("tiny-sd1/pipeline/tokenizer"));
  EXPECT_THROW(tok.tokenize(std::string("bad \xff\xfe text")), sdtune::Error);
}

// Broken tokenizer folders: each must give an Error naming the broken file.
struct BrokenTokenizerCase {
  const char* name;
  const char* file;
  const char* content;
  const char* expected_in_message;
};

void PrintTo(const BrokenTokenizerCase& c, std::ostream* os) { *os << c.name; }

class BrokenTokenizer : public ::testing::TestWithParam<BrokenTokenizerCase> {};

TEST_P(BrokenTokenizer, GivesClearError) {
  const auto& c = GetParam();
  sdtune::test::TempDir dir;
  for (const char* f : {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"})
    std::filesystem::copy_file(data_path(std::string("tiny-sd2/pipeline/tokenizer/") + f), dir.file(f));
  if (std::string(c.content) == "<delete>")
    std::filesystem::remove(dir.file(c.file));
  else
    std::ofstream(dir.file(c.file), std::ios::trunc) << c.content;
  try {
    ClipTokenizer tok(dir.path.string());
    FAIL() << "no error for " << c.name;
  } catch (const sdtune::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(c.file), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected_in_message), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BrokenTokenizer,
    ::testing::Values(BrokenTokenizerCase{"missing_vocab", "vocab.json", "<delete>", "not found"},
                      BrokenTokenizerCase{"vocab_not_json", "vocab.json", "{\"a\": 1,", "invalid JSON"},
                      BrokenTokenizerCase{"vocab_array", "vocab.json", "[1, 2]", "non-empty JSON object"},
                      BrokenTokenizerCase{"vocab_bad_id", "vocab.json", "{\"a\": -3}", "token \"a\" has id -3; ids of a 1-token vocabulary must be integers from 0 to 1025"},
                      BrokenTokenizerCase{"vocab_huge_id", "vocab.json", "{\"a\": 99999999999}", "has id 99999999999; ids of a 1-token"},
                      BrokenTokenizerCase{"missing_merges", "merges.txt", "<delete>", "not found"},
                      BrokenTokenizerCase{"bad_merge_line", "merges.txt", "#version: 0.2\ni n\nthree parts here\n", "line 3"},
                      BrokenTokenizerCase{"config_not_json", "tokenizer_config.json", "nope", "invalid JSON"},
                      BrokenTokenizerCase{"unknown_special", "special_tokens_map.json",
                                          "{\"pad_token\": \"<nothing-like-this>\"}", "not in the vocabulary"}),
    [](const auto& info) { return std::string(info.param.name); });

// Prompt chunking (A1111) and truncation (diffusers).
TEST(PromptChunks, LongPromptsBecomeChunksOrAreTruncated) {
  ClipTokenizer tok(data_path("tiny-sd2/pipeline/tokenizer"));
  const auto m = sdtune::io::read_json_file(data_path("tiny-sd2/ref/manifest.json"));
  const std::string long_prompt = m["constants"]["PROMPTS"][2].get<std::string>();  // 204 tokens
  const auto expected = sdtune::test::read_int64_rows(data_path("tiny-sd2/ref/tokenizer_ids.safetensors"), "input_ids");

  sdtune::text::PromptOptions truncate;
  truncate.truncate = true;
  const auto cut = sdtune::text::tokenize_prompt(tok, long_prompt, truncate);
  ASSERT_EQ(cut.chunks.size(), 1u);
  EXPECT_EQ(cut.chunks[0].ids, expected[2]);
  EXPECT_EQ(cut.token_count, 204);
  EXPECT_FALSE(cut.truncated_text.empty());

  const auto chunked = sdtune::text::tokenize_prompt(tok, long_prompt, {});
  ASSERT_EQ(chunked.chunks.size(), 3u);
  EXPECT_TRUE(chunked.truncated_text.empty());
  size_t tokens = 0;
  for (const auto& chunk : chunked.chunks) {
    ASSERT_EQ(chunk.ids.size(), 77u);
    EXPECT_EQ(chunk.ids.front(), tok.bos_id());
    for (size_t i = 1; i < chunk.ids.size() && chunk.ids[i] != tok.eos_id(); ++i) ++tokens;
  }
  EXPECT_EQ(tokens, 204u);
  // A full chunk breaks after its last comma: the first chunk ends with ",</w>" then EOS.
  const auto& first = chunked.chunks[0].ids;
  const size_t eos = size_t(std::find(first.begin() + 1, first.end(), tok.eos_id()) - first.begin());
  EXPECT_EQ(tok.token_text(first[eos - 1]), ",</w>");
  EXPECT_LE(eos - 1, 75u);
}

TEST(PromptChunks, ShortPromptEqualsDiffusersIds) {
  ClipTokenizer tok(data_path("tiny-sd2/pipeline/tokenizer"));
  const auto expected = sdtune::test::read_int64_rows(data_path("tiny-sd2/ref/tokenizer_ids.safetensors"), "input_ids");
  const auto chunks = sdtune::text::tokenize_prompt(tok, "photo of (lora-misato-token), smiling", {});
  ASSERT_EQ(chunks.chunks.size(), 1u);
  EXPECT_EQ(chunks.chunks[0].ids, expected[0]);
  EXPECT_FALSE(chunks.has_weights());
}

TEST(PromptChunks, A1111WeightsFollowTokens) {
  ClipTokenizer tok(data_path("tiny-sd1/pipeline/tokenizer"));
  sdtune::text::PromptOptions a1111;
  a1111.weighting = sdtune::text::PromptWeighting::A1111;
  const auto p = sdtune::text::tokenize_prompt(tok, "a (castle:1.5) BREAK [hill]", a1111);
  ASSERT_EQ(p.chunks.size(), 2u);
  const auto& c0 = p.chunks[0];
  // BOS a castle EOS: "castle" may be several BPE pieces, all weighted 1.5.
  EXPECT_FLOAT_EQ(c0.weights[0], 1.f);
  EXPECT_FLOAT_EQ(c0.weights[1], 1.f);
  EXPECT_FLOAT_EQ(c0.weights[2], 1.5f);
  EXPECT_EQ(tok.decode({c0.ids.begin() + 1, c0.ids.begin() + 3}).substr(0, 1), "a");
  const auto& c1 = p.chunks[1];
  EXPECT_NEAR(c1.weights[1], 1 / 1.1, 1e-6);
  // Brackets of the trigger token stay literal text without a1111.
  const auto plain = sdtune::text::tokenize_prompt(tok, "(x:1.5)", {});
  EXPECT_FALSE(plain.has_weights());
}

TEST(PromptChunks, PadToSameChunkCountUsesEmptyPrompt) {
  ClipTokenizer tok(data_path("tiny-sd2/pipeline/tokenizer"));
  auto p = sdtune::text::tokenize_prompt(tok, "blurry", {});
  sdtune::text::pad_to_chunk_count(tok, 3, &p);
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[2].ids, tok.encode_padded(""));
}

}  // namespace
