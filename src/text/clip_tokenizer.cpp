#include "text/clip_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"
#include "io/input_file.h"
#include "text/unicode_text.h"

namespace fs = std::filesystem;

namespace sdtune::text {

namespace {

// GPT-2's reversible byte -> printable code point table, as UTF-8 strings.
const std::vector<std::string>& byte_to_unicode() {
  static const std::vector<std::string> table = [] {
    std::vector<int> code(256, -1);
    auto keep = [&](int lo, int hi) {
      for (int b = lo; b <= hi; ++b) code[b] = b;
    };
    keep('!', '~');
    keep(0xA1, 0xAC);
    keep(0xAE, 0xFF);
    int next = 256;
    for (int b = 0; b < 256; ++b)
      if (code[b] < 0) code[b] = next++;
    std::vector<std::string> out(256);
    for (int b = 0; b < 256; ++b) {
      const int c = code[b];  // < 0x800: two UTF-8 bytes at most
      out[b] = c < 0x80 ? std::string(1, char(c))
                        : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))};
    }
    return out;
  }();
  return table;
}

// Splits a UTF-8 string into code points.
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    len = std::min(len, s.size() - i);
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

std::string token_content(const io::Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return "";
}

}  // namespace

ClipTokenizer::ClipTokenizer(const std::string& folder) : ClipTokenizer(io::read_tokenizer_folder(folder)) {}

ClipTokenizer::ClipTokenizer(const io::TokenizerFiles& files) {
  read_vocab(files.vocab);
  read_merges(files.merges);
  read_special_tokens(files);
}

// Ids a vocabulary of `entries` tokens may use: dense up to twice its size plus room for added tokens.
// The id table is sized by the largest id, so a few-KB file with id 16777215 must not allocate it.
static int64_t id_limit(size_t entries) { return std::min<int64_t>(1 << 24, 2 * int64_t(entries) + 1024); }

void ClipTokenizer::read_vocab(const io::TokenizerFiles::Text& file) {
  const std::string& path = file.where;
  const io::Json vocab = io::parse_json_text(file.text, path);
  if (!vocab.is_object() || vocab.empty()) throw Error(path, "vocab must be a non-empty JSON object {token: id}");
  const int64_t limit = id_limit(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= limit)
      throw Error(path, "token " + in_quotes(it.key()) + " has id " + io::json_excerpt(*it) + "; ids of a " + std::to_string(vocab.size()) +
                            "-token vocabulary must be integers from 0 to " + std::to_string(limit - 1));
    const int64_t id = it->get<int64_t>();
    vocab_[it.key()] = id;
    if (int64_t(id_to_token_.size()) <= id) id_to_token_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = it.key();
  }
}

void ClipTokenizer::read_merges(const io::TokenizerFiles::Text& file) {
  const std::string& path = file.where;
  std::istringstream in(file.text);
  // CLIP skips the "#version" line and uses at most 49152 - 256 - 2 merges.
  constexpr int kMaxMerges = 49152 - 256 - 2;
  std::string line;
  std::getline(in, line);
  int line_no = 1;
  while (std::getline(in, line) && int(merge_ranks_.size()) < kMaxMerges) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw Error(path, "line " + std::to_string(line_no) + " is not a merge of two symbols: " + in_quotes(line));
    merge_ranks_.emplace(line, int(merge_ranks_.size()));
  }
}

int64_t ClipTokenizer::id_of(const std::string& token, const std::string& where) const {
  auto it = vocab_.find(token);
  if (it != vocab_.end()) return it->second;
  for (const auto& added : added_tokens_)
    if (added.content == token) return added.id;
  throw Error(where, "special token " + in_quotes(token) + " is not in the vocabulary");
}

void ClipTokenizer::read_special_tokens(const io::TokenizerFiles& files) {
  const std::string& where = files.config.where;
  const std::string& map_path = files.special_tokens.where;
  io::Json config = files.config.text.empty() ? io::Json::object() : io::parse_json_text(files.config.text, where);
  io::Json special = files.special_tokens.text.empty() ? io::Json::object() : io::parse_json_text(files.special_tokens.text, map_path);
  if (!config.is_object()) throw Error(where, "must be a JSON object");
  if (!special.is_object()) throw Error(map_path, "must be a JSON object");

  if (auto added = config.find("added_tokens_decoder"); added != config.end() && added->is_object()) {
    for (auto it = added->begin(); it != added->end(); ++it) {
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
      }
      const std::string content = token_content(*it);
      if (id < 0 || id >= id_limit(vocab_.size()) || content.empty())
        throw Error(where, "added token " + in_quotes(it.key()) + " is malformed or its id is beyond " + std::to_string(id_limit(vocab_.size()) - 1));
      added_tokens_.push_back({content, id, io::config_value<bool>(*it, "lstrip", false, where),
                               io::config_value<bool>(*it, "rstrip", false, where)});
      if (int64_t(id_to_token_.size()) <= id) id_to_token_.resize(size_t(id) + 1);
      if (id_to_token_[size_t(id)].empty()) id_to_token_[size_t(id)] = content;
    }
  }
  // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
  auto special_token = [&](const char* key, const char* fallback) {
    std::string value = special.contains(key) ? token_content(special[key]) : "";
    if (value.empty() && config.contains(key)) value = token_content(config[key]);
    return value.empty() ? std::string(fallback) : value;
  };
  const std::string bos = special_token("bos_token", "<|startoftext|>");
  const std::string eos = special_token("eos_token", "<|endoftext|>");
  const std::string unk = special_token("unk_token", "<|endoftext|>");
  const std::string pad = special_token("pad_token", "<|endoftext|>");
  // Every special token is also split out of the text before BPE (transformers adds them to its trie).
  for (const std::string& token : {bos, eos, unk, pad}) {
    const bool known = std::any_of(added_tokens_.begin(), added_tokens_.end(),
                                   [&](const AddedToken& a) { return a.content == token; });
    if (!known) added_tokens_.push_back({token, id_of(token, map_path), false, false});
  }
  bos_id_ = id_of(bos, map_path);
  eos_id_ = id_of(eos, map_path);
  unk_id_ = id_of(unk, map_path);
  pad_id_ = id_of(pad, map_path);
  std::sort(added_tokens_.begin(), added_tokens_.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });

  // Very large model_max_length values mean "unset" in transformers; CLIP text encoders use 77.
  const int64_t max_length = io::config_value<int64_t>(config, "model_max_length", 77, where);
  if (max_length < 3) throw Error(where, "model_max_length must be at least 3");
  max_length_ = max_length > 100000 ? 77 : max_length;
}

const std::vector<std::string>& ClipTokenizer::bpe(const std::string& word) const {
  auto cached = bpe_cache_.find(word);
  if (cached != bpe_cache_.end()) return cached->second;
  std::vector<std::string> symbols = utf8_chars(word);
  if (symbols.empty()) return bpe_cache_.emplace(word, symbols).first->second;
  symbols.back() += "</w>";
  while (symbols.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    std::string best;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = it->first;
      }
    }
    if (best.empty()) break;
    const std::string first = best.substr(0, best.find(' '));
    const std::string second = best.substr(best.find(' ') + 1);
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols.swap(merged);
  }
  return bpe_cache_.emplace(word, std::move(symbols)).first->second;
}

void ClipTokenizer::tokenize_plain(const std::string& piece, std::vector<Token>* out) const {
  const auto& bytes = byte_to_unicode();
  for (const std::string& word : clip_split_words(clip_clean_text(piece))) {
    std::string encoded;
    for (unsigned char b : word) encoded += bytes[b];
    for (const std::string& symbol : bpe(encoded)) {
      auto it = vocab_.find(symbol);
      out->push_back({symbol, it != vocab_.end() ? it->second : unk_id_});
    }
  }
}

std::vector<Token> ClipTokenizer::tokenize(const std::string& text) const {
  check_utf8(text, "prompt");
  std::vector<Token> tokens;
  std::string pending;  // plain text since the last added token
  bool strip_left = false;
  size_t i = 0;
  while (i < text.size()) {
    const AddedToken* match = nullptr;
    for (const auto& added : added_tokens_)  // longest first
      if (matches_at(text, i, added)) {
        match = &added;
        break;
      }
    if (!match) {
      if (!(strip_left && pending.empty() && std::isspace(static_cast<unsigned char>(text[i])))) {
        pending += text[i];
        strip_left = false;
      }
      ++i;
      continue;
    }
    if (match->lstrip)
      while (!pending.empty() && std::isspace(static_cast<unsigned char>(pending.back()))) pending.pop_back();
    tokenize_plain(pending, &tokens);
    pending.clear();
    for (int64_t k = 0; k < match->count; ++k) tokens.push_back({token_text(match->id + k), match->id + k});
    strip_left = match->rstrip;
    i += match->content.size();
  }
  tokenize_plain(pending, &tokens);
  return tokens;
}

bool ClipTokenizer::matches_at(const std::string& text, size_t at, const AddedToken& token) const {
  if (!token.any_case) return text.compare(at, token.content.size(), token.content) == 0;
  if (text.size() - at < token.content.size()) return false;
  for (size_t k = 0; k < token.content.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(text[at + k])) != std::tolower(static_cast<unsigned char>(token.content[k]))) return false;
  return true;
}

void ClipTokenizer::add_embedding_token(const std::string& name, int64_t vectors, const std::string& where) {
  if (name.empty()) throw Error(where, "has an empty token name");
  if (vocab_.count(name))
    throw Error(where, "token " + in_quotes(name) + " is already in the tokenizer's vocabulary; choose another name (--embedding FILE:NAME)");
  for (const auto& added : added_tokens_)
    if (added.any_case ? matches_at(name, 0, added) && added.content.size() == name.size() : added.content == name)
      throw Error(where, "token " + in_quotes(name) + " is given twice (or is a special token)");
  const int64_t first = vocab_size();
  for (int64_t k = 0; k < vectors; ++k) id_to_token_.push_back(k == 0 ? name : name + "_" + std::to_string(k));
  added_tokens_.push_back({name, first, false, false, true, vectors});
  std::stable_sort(added_tokens_.begin(), added_tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
}

std::vector<int64_t> ClipTokenizer::encode_padded(const std::string& text) const {
  std::vector<int64_t> ids{bos_id_};
  for (const Token& t : tokenize(text)) {
    if (int64_t(ids.size()) == max_length_ - 1) break;
    ids.push_back(t.id);
  }
  ids.push_back(eos_id_);
  ids.resize(size_t(max_length_), pad_id_);
  return ids;
}

std::string ClipTokenizer::token_text(int64_t id) const {
  if (id < 0 || id >= int64_t(id_to_token_.size())) return "";
  return id_to_token_[size_t(id)];
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  static const std::unordered_map<std::string, unsigned char> unicode_to_byte = [] {
    std::unordered_map<std::string, unsigned char> m;
    const auto& table = byte_to_unicode();
    for (int b = 0; b < 256; ++b) m[table[b]] = static_cast<unsigned char>(b);
    return m;
  }();
  std::string bytes;
  for (int64_t id : ids) {
    std::string token = token_text(id);
    const bool word_end = token.size() >= 4 && token.compare(token.size() - 4, 4, "</w>") == 0;
    if (word_end) token.resize(token.size() - 4);
    for (const std::string& ch : utf8_chars(token)) {
      auto it = unicode_to_byte.find(ch);
      bytes += it != unicode_to_byte.end() ? std::string(1, char(it->second)) : ch;
    }
    if (word_end) bytes += ' ';
  }
  while (!bytes.empty() && bytes.back() == ' ') bytes.pop_back();
  return bytes;
}

}  // namespace sdtune::text
