// Prompt text (the tokenizer's text side) through everything a prompt meets before the text encoder, with the SD 2 test
// tokenizer: <lora:> tags, A1111 emphasis, CLIP's Unicode clean-up and BPE, 75-token chunks. Every
// weight that comes out must be finite (it multiplies the text embeddings).
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "text/clip_tokenizer.h"
#include "text/lora_tags.h"
#include "text/prompt_chunks.h"
#include "text/prompt_parser.h"

namespace {

void require_finite(double weight, const char* what) {
  if (!std::isfinite(weight)) {
    std::fprintf(stderr, "%s weight %g is not finite\n", what, weight);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  static const text::ClipTokenizer tokenizer(SDTUNE_TEST_DATA "/tiny-sd2/pipeline/tokenizer");
  const std::string prompt(reinterpret_cast<const char*>(data), size);
  fuzz::expect_success_or_error([&] {
    const text::PromptWithLoras split = text::extract_lora_tags(prompt);
    for (const text::LoraTag& tag : split.loras) require_finite(tag.weight, "<lora:> tag");
    for (const text::WeightedText& piece : text::parse_prompt_weights(split.prompt))
      require_finite(piece.weight, "emphasis");
    for (const bool truncate : {false, true}) {
      const text::TokenizedPrompt tokens =
          text::tokenize_prompt(tokenizer, split.prompt, {text::PromptWeighting::A1111, truncate});
      for (const text::PromptChunk& chunk : tokens.chunks)
        for (const float weight : chunk.weights) require_finite(weight, "chunk");
    }
    text::tokenize_prompt(tokenizer, prompt, {text::PromptWeighting::None, false});
  });
  return 0;
}
