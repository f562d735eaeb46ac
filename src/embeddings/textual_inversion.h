// Textual-inversion embeddings: learned token vectors that a word in the prompt stands for. Files as
// people share them (safetensors only; pickled .pt/.bin files are refused like checkpoints):
//   A1111 / kohya   {"emb_params": [n, dim]}: the token is the file name (e.g. EasyNegative.safetensors)
//   diffusers       {"<token>": [dim] or [n, dim]} (learned_embeds.safetensors): the token is the key
//   A1111 export    {"string_to_param.*": [n, dim]}: the token is the file name
// Loaded as diffusers' load_textual_inversion does: the token and, for n > 1, "<token>_1" ... get new ids
// after the tokenizer's vocabulary and the vectors become those rows of the text encoder's table.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "models/clip_text.h"
#include "text/clip_tokenizer.h"

namespace sdtune::embeddings {

struct Embedding {
  std::string token;
  at::Tensor vectors;  // [n, dim] float32
  std::string path;
};

// Reads one embedding file; `token` overrides the name it would otherwise get. Errors name the file.
Embedding read_embedding(const std::string& path, const std::string& token = "");

// "--embedding PATH[:TOKEN]": an existing file is taken whole, else the text after the last ':' is the token.
std::pair<std::string, std::string> parse_embedding_flag(const std::string& value);

// The embedding files of --embeddings_dir (searched recursively, as A1111 does) whose name - the file name
// without extension - occurs in any of `texts`, in any case. Only those are read. A used name that is a
// pickle file, is in the folder twice, or is a link leading out of the folder is an Error.
std::vector<std::string> embeddings_used(const std::string& dir, const std::vector<std::string>& texts);

// Adds every embedding to the tokenizer and the text encoder (in order: ids are given in sequence); an
// empty `encoder` changes only the tokenizer (commands that show token ids).
void add_embeddings(const std::vector<Embedding>& embeddings, text::ClipTokenizer& tokenizer, models::ClipTextModel encoder);

}  // namespace sdtune::embeddings
