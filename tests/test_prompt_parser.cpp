#include <gtest/gtest.h>

#include "pipeline/infotext.h"
#include "text/prompt_parser.h"

using sdtune::text::parse_prompt_weights;

namespace {

// Expected values are the doctests of A1111's prompt_parser.parse_prompt_attention.
std::vector<std::pair<std::string, double>> parse(const std::string& s) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& f : parse_prompt_weights(s)) out.emplace_back(f.is_break ? "BREAK" : f.text, f.weight);
  return out;
}

void expect_parse(const std::string& prompt, const std::vector<std::pair<std::string, double>>& expected) {
  const auto got = parse(prompt);
  ASSERT_EQ(got.size(), expected.size()) << prompt;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, expected[i].first) << prompt;
    EXPECT_NEAR(got[i].second, expected[i].second, 1e-12) << prompt << " fragment " << i;
  }
}

TEST(PromptParser, A1111Doctests) {
  expect_parse("normal text", {{"normal text", 1.0}});
  expect_parse("an (important) word", {{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}});
  expect_parse("(unbalanced", {{"unbalanced", 1.1}});
  expect_parse("\\(literal\\]", {{"(literal]", 1.0}});
  expect_parse("(unnecessary)(parens)", {{"unnecessaryparens", 1.1}});
  expect_parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
               {{"a ", 1.0}, {"house", 1.5730000000000004}, {" ", 1.1}, {"on", 1.0}, {" a ", 1.1},
                {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006}, {".", 1.1}});
}

TEST(PromptParser, WeightsEscapesAndBreak) {
  expect_parse("(deformed, distorted, disfigured:1.3), poorly drawn",
               {{"deformed, distorted, disfigured", 1.3}, {", poorly drawn", 1.0}});
  expect_parse("[word]", {{"word", 1 / 1.1}});
  expect_parse("a BREAK b", {{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}});
  expect_parse("BREAKFAST", {{"BREAKFAST", 1.0}});
  expect_parse("\\(lora-misato-token\\)", {{"(lora-misato-token)", 1.0}});
  expect_parse("x:1.2) y", {{"x:1.2) y", 1.0}});  // a weight without an open bracket is text
  expect_parse("", {{"", 1.0}});
}

}  // namespace

#include "core/error.h"
#include "text/lora_tags.h"

namespace {

TEST(LoraTags, AreStrippedFromThePrompt) {
  const auto p = sdtune::text::extract_lora_tags("a castle <lora:misato:0.8>, sunset <lora:style>");
  EXPECT_EQ(p.prompt, "a castle , sunset ");
  ASSERT_EQ(p.loras.size(), 2u);
  EXPECT_EQ(p.loras[0].name, "misato");
  EXPECT_DOUBLE_EQ(p.loras[0].weight, 0.8);
  EXPECT_EQ(p.loras[1].name, "style");
  EXPECT_DOUBLE_EQ(p.loras[1].weight, 1.0);
  EXPECT_EQ(sdtune::text::extract_lora_tags("no tags (x:1.2)").prompt, "no tags (x:1.2)");
  EXPECT_THROW(sdtune::text::extract_lora_tags("<lora:x:abc>"), sdtune::Error);
  EXPECT_THROW(sdtune::text::extract_lora_tags("<lora::1>"), sdtune::Error);
  EXPECT_THROW(sdtune::text::extract_lora_tags("<lora:x"), sdtune::Error);
}

}  // namespace

TEST(Infotext, A1111FieldsStayOneReadingWithCommasAndColonsInNames) {
  sdtune::pipeline::Infotext info;
  info.prompt = "a castle " + sdtune::pipeline::lora_tag("my,lora", 0.1);
  info.steps = 2;
  info.scheduler = "euler_a";
  info.model = "model, v2";
  info.model_hash = "0123456789abcdef";
  info.lora_hashes = {{"my,lora", "80cf776d2806ffff"}, {"b:c", "433a7fd89847ffff"}};
  info.ti_hashes = {{"EasyNegative", "848061e8749bffff"}};
  const std::string text = info.format();
  EXPECT_EQ(text.rfind("a castle <lora:my,lora:0.1>\nSteps: 2, Sampler: Euler a", 0), 0u) << text;
  // A1111's quote(): values with ',' or ':' become JSON strings; names lose ':' and ',' in the hash lists.
  EXPECT_NE(text.find(", Model hash: 0123456789, Model: \"model, v2\","), std::string::npos) << text;
  EXPECT_NE(text.find(", Lora hashes: \"mylora: 80cf776d2806, bc: 433a7fd89847\", TI hashes: \"EasyNegative: 848061e8749b\""), std::string::npos) << text;
  EXPECT_EQ(sdtune::pipeline::lora_tag("x", 1.0 / 3), "<lora:x:0.3333333333333333>");
  EXPECT_EQ(sdtune::pipeline::lora_tag("x", 0.75), "<lora:x:0.75>");
}
