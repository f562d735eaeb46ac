// The text of a CLIP tokenizer's files, from a diffusers tokenizer/ folder or shipped with sdtune (for
// single-file checkpoints, which carry none). text/clip_tokenizer parses them.
#pragma once
#include <string>

namespace sdtune::io {

struct TokenizerFiles {
  struct Text {
    std::string where;  // the file name messages give
    std::string text;   // "" for an optional file that is absent
  };
  Text vocab, merges, config, special_tokens;  // vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json
};

// Reads a tokenizer folder (vocab.json and merges.txt required); Error naming what is missing.
TokenizerFiles read_tokenizer_folder(const std::string& folder);

// CLIP ViT-L/14's BPE (SD 1.x and, with pad token "!", SD 2.x), compiled in from data/clip-tokenizer/.
TokenizerFiles shipped_clip_tokenizer(const std::string& pad_token);

}  // namespace sdtune::io
