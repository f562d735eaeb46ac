#include "text/prompt_chunks.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/printable.h"
#include "text/prompt_parser.h"

namespace sdtune::text {

namespace {

constexpr size_t kCommaBacktrack = 20;  // A1111's comma_padding_backtrack default

struct WeightedToken {
  int64_t id;
  float weight;
};

PromptChunk make_chunk(const ClipTokenizer& tokenizer, const std::vector<WeightedToken>& tokens) {
  PromptChunk chunk;
  chunk.ids.push_back(tokenizer.bos_id());
  chunk.weights.push_back(1.f);
  for (const auto& t : tokens) {
    chunk.ids.push_back(t.id);
    chunk.weights.push_back(t.weight);
  }
  chunk.ids.push_back(tokenizer.eos_id());
  chunk.weights.push_back(1.f);
  chunk.ids.resize(size_t(tokenizer.max_length()), tokenizer.pad_id());
  chunk.weights.resize(size_t(tokenizer.max_length()), 1.f);
  return chunk;
}

// Emphasis fragments of the prompt: the whole text at weight 1 unless A1111 parsing is asked for.
// A weight must stay finite as the float that scales the embeddings: "(x:1e92)" or a few thousand
// nested brackets (1.1 each) would turn the image into NaN.
std::vector<WeightedText> fragments_of(const std::string& prompt, PromptWeighting weighting, const std::string& where) {
  if (weighting != PromptWeighting::A1111) return {{prompt, 1.0}};
  std::vector<WeightedText> fragments = parse_prompt_weights(prompt);
  for (const WeightedText& f : fragments)
    if (!std::isfinite(float(f.weight)) || std::fabs(f.weight) > kMaxEmphasisWeight) {
      char weight[32];
      std::snprintf(weight, sizeof weight, "%g", f.weight);
      throw Error(where, "an emphasis weight of " + std::string(weight) + " (on " + in_quotes(f.text, 40) + ") is beyond +-" +
                             std::to_string(int(kMaxEmphasisWeight)) + " (brackets nested too deep, or a huge (text:weight))");
    }
  return fragments;
}

}  // namespace

PromptWeighting parse_prompt_weighting(const std::string& value, const std::string& flag) {
  if (value == "none") return PromptWeighting::None;
  if (value == "a1111") return PromptWeighting::A1111;
  throw Error(flag, "unknown value " + in_quotes(value) + " (expected none or a1111)");
}

bool TokenizedPrompt::has_weights() const {
  for (const auto& chunk : chunks)
    for (float w : chunk.weights)
      if (w != 1.f) return true;
  return false;
}

TokenizedPrompt tokenize_prompt(const ClipTokenizer& tokenizer, const std::string& prompt,
                                const PromptOptions& options, const std::string& where) {
  const size_t chunk_length = size_t(tokenizer.max_length()) - 2;
  TokenizedPrompt result;

  if (options.truncate) {
    std::vector<WeightedToken> kept;
    std::vector<int64_t> dropped;
    for (const auto& fragment : fragments_of(prompt, options.weighting, where)) {
      for (const Token& t : tokenizer.tokenize(fragment.text)) {
        ++result.token_count;
        if (kept.size() < chunk_length)
          kept.push_back({t.id, float(fragment.weight)});
        else
          dropped.push_back(t.id);
      }
    }
    result.chunks.push_back(make_chunk(tokenizer, kept));
    result.truncated_text = tokenizer.decode(dropped);
    return result;
  }

  // A1111's tokenize_line: fill chunks of 75; BREAK starts a new one; a full chunk moves the tokens
  // after its last comma into the next chunk when that comma is near the end.
  int64_t comma_id = -1;
  for (const Token& t : tokenizer.tokenize(",")) comma_id = t.id;
  std::vector<WeightedToken> current;
  long last_comma = -1;
  auto flush = [&] {
    if (result.chunks.size() == kMaxPromptChunks)
      throw Error(where, "needs more than " + std::to_string(kMaxPromptChunks) + " chunks of " + std::to_string(chunk_length) +
                             " tokens (BREAK starts a new one); at most " + std::to_string(kMaxPromptChunks) + " are encoded");
    result.chunks.push_back(make_chunk(tokenizer, current));
    current.clear();
    last_comma = -1;
  };
  for (const auto& fragment : fragments_of(prompt, options.weighting, where)) {
    if (fragment.is_break) {
      flush();
      continue;
    }
    for (const Token& t : tokenizer.tokenize(fragment.text)) {
      ++result.token_count;
      if (t.id == comma_id) {
        last_comma = long(current.size());
      } else if (current.size() == chunk_length && last_comma != -1 &&
                 current.size() - size_t(last_comma) <= kCommaBacktrack) {
        std::vector<WeightedToken> moved(current.begin() + last_comma + 1, current.end());
        current.resize(size_t(last_comma) + 1);
        flush();
        current = std::move(moved);
      }
      if (current.size() == chunk_length) flush();
      current.push_back({t.id, float(fragment.weight)});
    }
  }
  if (!current.empty() || result.chunks.empty()) flush();
  return result;
}

void pad_to_chunk_count(const ClipTokenizer& tokenizer, size_t count, TokenizedPrompt* prompt) {
  while (prompt->chunks.size() < count) prompt->chunks.push_back(make_chunk(tokenizer, {}));
}

}  // namespace sdtune::text
