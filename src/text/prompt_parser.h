// AUTOMATIC1111's prompt emphasis syntax: (word) x1.1, ((word)), (word:1.3), [word] /1.1,
// \( \) \[ \] escapes, and BREAK to start a new 75-token chunk.
#pragma once
#include <string>
#include <vector>

namespace sdtune::text {

struct WeightedText {
  std::string text;
  double weight;
  bool is_break = false;  // a BREAK marker; text is empty
};

// Same fragments and weights as A1111's parse_prompt_attention (runs of equal weight merged;
// unbalanced brackets close at the end; an empty prompt gives one empty fragment).
std::vector<WeightedText> parse_prompt_weights(const std::string& prompt);

}  // namespace sdtune::text
