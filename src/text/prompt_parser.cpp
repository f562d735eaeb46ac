#include "text/prompt_parser.h"

#include <cctype>
#include <cstdlib>

namespace sdtune::text {

namespace {

constexpr double kRoundMultiplier = 1.1;
constexpr double kSquareMultiplier = 1 / 1.1;

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Matches `:\s*([+-]?[.\d]+)\s*\)` at `pos`; on success sets the weight and the match length.
bool match_weight(const std::string& s, size_t pos, double* weight, size_t* length) {
  if (s[pos] != ':') return false;
  size_t i = pos + 1;
  while (i < s.size() && is_space(s[i])) ++i;
  const size_t number_start = i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits_start = i;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == digits_start) return false;
  const std::string number = s.substr(number_start, i - number_start);
  while (i < s.size() && is_space(s[i])) ++i;
  if (i >= s.size() || s[i] != ')') return false;
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  // A1111 calls float() on it, which fails on e.g. "1.2.3"; such text is treated as plain text here.
  if (end != number.c_str() + number.size()) return false;
  *weight = value;
  *length = i + 1 - pos;
  return true;
}

// Splits plain text on the word BREAK (with the whitespace around it), as A1111's re_break does.
void append_plain(const std::string& text, std::vector<WeightedText>* out) {
  size_t start = 0;
  size_t search = 0;
  while (true) {
    size_t found = text.find("BREAK", search);
    if (found == std::string::npos) break;
    auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    const bool left_ok = found == 0 || !word_char(text[found - 1]);
    const bool right_ok = found + 5 >= text.size() || !word_char(text[found + 5]);
    if (!left_ok || !right_ok) {
      search = found + 1;
      continue;
    }
    size_t left = found;
    while (left > start && is_space(text[left - 1])) --left;
    size_t right = found + 5;
    while (right < text.size() && is_space(text[right])) ++right;
    out->push_back({text.substr(start, left - start), 1.0});
    out->push_back({"", -1.0, true});
    start = search = right;
  }
  out->push_back({text.substr(start), 1.0});
}

}  // namespace

std::vector<WeightedText> parse_prompt_weights(const std::string& prompt) {
  std::vector<WeightedText> res;
  std::vector<size_t> round_brackets, square_brackets;
  auto multiply_from = [&](size_t start, double multiplier) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= multiplier;
  };
  size_t i = 0;
  while (i < prompt.size()) {
    const char c = prompt[i];
    double weight = 0;
    size_t length = 0;
    if (c == '\\') {  // \( \) \[ \] \\ give the character; a lone backslash gives nothing
      const bool escapes = i + 1 < prompt.size() && std::string("()[]\\").find(prompt[i + 1]) != std::string::npos;
      res.push_back({escapes ? std::string(1, prompt[i + 1]) : std::string(), 1.0});
      i += escapes ? 2 : 1;
    } else if (c == '(') {
      round_brackets.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square_brackets.push_back(res.size());
      ++i;
    } else if (match_weight(prompt, i, &weight, &length)) {
      if (!round_brackets.empty()) {
        multiply_from(round_brackets.back(), weight);
        round_brackets.pop_back();
      } else {
        append_plain(prompt.substr(i, length), &res);
      }
      i += length;
    } else if (c == ')' && !round_brackets.empty()) {
      multiply_from(round_brackets.back(), kRoundMultiplier);
      round_brackets.pop_back();
      ++i;
    } else if (c == ']' && !square_brackets.empty()) {
      multiply_from(square_brackets.back(), kSquareMultiplier);
      square_brackets.pop_back();
      ++i;
    } else if (c == ')' || c == ']' || c == ':') {
      append_plain(std::string(1, c), &res);
      ++i;
    } else {  // a run of ordinary characters
      size_t end = i;
      while (end < prompt.size() && std::string("\\()[]:").find(prompt[end]) == std::string::npos) ++end;
      append_plain(prompt.substr(i, end - i), &res);
      i = end;
    }
  }
  for (size_t pos : round_brackets) multiply_from(pos, kRoundMultiplier);
  for (size_t pos : square_brackets) multiply_from(pos, kSquareMultiplier);
  if (res.empty()) res.push_back({"", 1.0});
  // Merge neighbours of equal weight (BREAK markers have weight -1 and never merge with text).
  std::vector<WeightedText> merged;
  for (auto& fragment : res) {
    if (!merged.empty() && merged.back().weight == fragment.weight && !merged.back().is_break && !fragment.is_break)
      merged.back().text += fragment.text;
    else
      merged.push_back(fragment);
  }
  return merged;
}

}  // namespace sdtune::text
