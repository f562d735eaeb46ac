// A prompt turned into the text encoder's input: one or more chunks of max_length ids (BOS, up to 75
// tokens, EOS, padding), each id with its emphasis weight.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/clip_tokenizer.h"

namespace sdtune::text {

enum class PromptWeighting { None, A1111 };

// "none" | "a1111"; anything else is an Error naming `flag`.
PromptWeighting parse_prompt_weighting(const std::string& value, const std::string& flag);

struct PromptChunk {
  std::vector<int64_t> ids;    // max_length ids: BOS, tokens, EOS, pad...
  std::vector<float> weights;  // 1 for BOS/EOS/pad
};

struct TokenizedPrompt {
  std::vector<PromptChunk> chunks;
  int64_t token_count = 0;     // tokens of the prompt, without BOS/EOS
  std::string truncated_text;  // what truncation cut off (empty when nothing was cut)
  bool has_weights() const;    // any weight other than 1
};

// Most chunks of 75 tokens a prompt may need (4800 tokens): far beyond what the text encoder's
// attention to the whole prompt is useful for, and it bounds the memory a hostile prompt can ask for.
constexpr size_t kMaxPromptChunks = 64;

// Largest emphasis weight accepted (A1111 has no bound; ours keeps the scaled embeddings finite, far
// beyond the 0.5..2 that prompts use).
constexpr double kMaxEmphasisWeight = 1000;

struct PromptOptions {
  PromptWeighting weighting = PromptWeighting::None;
  // false: long prompts become several chunks (A1111); true: cut after the first chunk (diffusers).
  bool truncate = false;
};

// `none` keeps brackets as plain text (diffusers). `a1111` parses emphasis and BREAK. Without
// truncation, a chunk that fills up breaks after its last comma when that comma is within the last
// 20 tokens, as A1111 does. A prompt that needs more than kMaxPromptChunks chunks is an Error named
// `where` ("the prompt", "the negative prompt").
TokenizedPrompt tokenize_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                                const PromptOptions& options, const std::string& where = "the prompt");

// Appends chunks of the empty prompt until `prompt` has `count` chunks (A1111 pads the prompt and
// the negative prompt to the same length this way).
void pad_to_chunk_count(const ClipTokenizer& tokenizer, size_t count, TokenizedPrompt* prompt);

}  // namespace sdtune::text
