// CLIP's byte-level BPE tokenizer, as transformers' (slow) CLIPTokenizer reads it from a diffusers
// tokenizer/ folder (vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json) or from
// the copy shipped with sdtune.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tokenizer_files.h"

namespace sdtune::text {

struct Token {
  std::string text;  // BPE string as in vocab.json, e.g. "photo</w>"
  int64_t id;
};

class ClipTokenizer {
 public:
  // Reads a tokenizer folder; every malformed file is an Error naming it.
  explicit ClipTokenizer(const std::string& folder);
  explicit ClipTokenizer(const io::TokenizerFiles& files);

  // Tokens of `text` without BOS/EOS, no truncation. Added/special tokens (e.g. "!" when it is the
  // pad token of SD 2.x) are split out first and keep their own id.
  std::vector<Token> tokenize(const std::string& text) const;

  // BOS + ids + EOS, truncated to max_length (BOS + first max_length-2 tokens + EOS) and padded.
  std::vector<int64_t> encode_padded(const std::string& text) const;

  // Text of ids, the way the tokenizer's decode shows it (</w> becomes a space).
  std::string decode(const std::vector<int64_t>& ids) const;
  std::string token_text(int64_t id) const;

  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t max_length() const { return max_length_; }
  int64_t vocab_size() const { return int64_t(id_to_token_.size()); }

  // A textual-inversion token, as diffusers' load_textual_inversion adds one: `name` in any (ASCII)
  // case and anywhere in the text (also inside words) is split out before BPE and stands for the ids
  // vocab_size() .. vocab_size() + vectors - 1 (decoded as name, name_1, name_2, ...). An Error when
  // the name is empty, already a vocabulary entry or already added (naming `where`, the file).
  void add_embedding_token(const std::string& name, int64_t vectors, const std::string& where);

 private:
  struct AddedToken {
    std::string content;
    int64_t id;
    bool lstrip, rstrip;
    bool any_case = false;  // embedding names: matched case-insensitively (the fast tokenizer normalises)
    int64_t count = 1;      // ids id .. id + count - 1
  };
  bool matches_at(const std::string& text, size_t at, const AddedToken& token) const;

  void read_vocab(const io::TokenizerFiles::Text& file);
  void read_merges(const io::TokenizerFiles::Text& file);
  void read_special_tokens(const io::TokenizerFiles& files);
  int64_t id_of(const std::string& token, const std::string& where) const;
  const std::vector<std::string>& bpe(const std::string& word) const;
  void tokenize_plain(const std::string& piece, std::vector<Token>* out) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int> merge_ranks_;  // "a b" -> rank
  std::vector<AddedToken> added_tokens_;               // split out before BPE, longest first
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0;
  int64_t max_length_ = 77;
  mutable std::unordered_map<std::string, std::vector<std::string>> bpe_cache_;
};

}  // namespace sdtune::text
