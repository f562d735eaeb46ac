#include "embeddings/textual_inversion.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/printable.h"
#include "io/input_file.h"
#include "io/model_source.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"

namespace fs = std::filesystem;

namespace sdtune::embeddings {

namespace {

// More vectors than one 75-token chunk holds is no embedding anyone trains; it would also crowd out the prompt.
constexpr int64_t kMaxVectors = 75;
// An embeddings folder is listed, not read; a bound keeps a folder such as / from taking minutes.
constexpr size_t kMaxFolderEntries = 100000;

std::string lowercase(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_embedding_extension(const fs::path& p) {
  const std::string ext = lowercase(p.extension().string());
  return ext == ".safetensors" || ext == ".pt" || ext == ".bin";
}

// The one tensor that holds the vectors, and the token the file gives (empty: the file name).
std::pair<const io::TensorEntry*, std::string> vectors_entry(const io::SafetensorsFile& file) {
  for (const char* name : {"emb_params", "string_to_param.*"})
    if (const auto* entry = file.find(name)) return {entry, ""};
  if (file.contains("clip_l") || file.contains("clip_g"))
    throw Error(file.path(), "is an SDXL embedding (clip_l / clip_g vectors); this model has one text encoder");
  if (file.tensors().size() == 1) return {&file.tensors()[0], file.tensors()[0].name};
  throw Error(file.path(), "is not a textual-inversion embedding: expected one tensor, \"emb_params\" or \"string_to_param.*\"; it has " +
                               std::to_string(file.tensors().size()));
}

}  // namespace

Embedding read_embedding(const std::string& path, const std::string& token) {
  if (io::is_pickle_file(path) || lowercase(fs::path(path).extension().string()) != ".safetensors")
    throw Error(path, io::pickle_refusal(path));
  const io::SafetensorsFile file(path);
  const auto [entry, key] = vectors_entry(file);
  Embedding e;
  e.path = path;
  e.token = !token.empty() ? token : !key.empty() ? key : fs::path(path).stem().string();
  if (entry->shape.size() != 1 && entry->shape.size() != 2)
    throw Error(path, "tensor " + in_quotes(entry->name) + " has shape " + shape_text(entry->shape) + "; embeddings are [dim] or [vectors, dim]");
  e.vectors = io::read_tensor(file, *entry).to(torch::kFloat).reshape({-1, entry->shape.back()}).clone();
  if (e.vectors.size(0) < 1 || e.vectors.size(0) > kMaxVectors || e.vectors.size(1) < 1)
    throw Error(path, "holds " + std::to_string(e.vectors.size(0)) + " vectors of width " + std::to_string(e.vectors.size(1)) +
                          "; an embedding has 1 to " + std::to_string(kMaxVectors));
  if (!io::all_finite(e.vectors)) throw Error(path, "tensor " + in_quotes(entry->name) + " holds NaN or infinite values");
  for (unsigned char c : e.token)
    if (std::iscntrl(c) || std::isspace(c))
      throw Error(path, "token " + in_quotes(printable(e.token)) + " has spaces or control characters; give one with --embedding FILE:TOKEN");
  return e;
}

std::pair<std::string, std::string> parse_embedding_flag(const std::string& value) {
  std::error_code ec;
  const size_t colon = value.rfind(':');
  if (fs::exists(value, ec) || colon == std::string::npos || colon == 0) return {value, ""};
  return {value.substr(0, colon), value.substr(colon + 1)};
}

std::vector<std::string> embeddings_used(const std::string& dir, const std::vector<std::string>& texts) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("--embeddings_dir", dir + " is not a folder");
  std::string all_text;
  for (const auto& t : texts) all_text += lowercase(t) + '\n';
  std::map<std::string, std::vector<std::string>> by_name;  // lower-case name -> files
  size_t entries = 0;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (++entries > kMaxFolderEntries) throw Error("--embeddings_dir", dir + " holds more than " + std::to_string(kMaxFolderEntries) + " entries");
    if (!is_embedding_extension(it->path()) || it->is_directory(ec)) continue;
    const std::string name = lowercase(it->path().stem().string());
    if (!name.empty() && all_text.find(name) != std::string::npos) by_name[name].push_back(it->path().string());
  }
  if (ec) throw Error("--embeddings_dir", dir + ": " + ec.message());
  std::vector<std::string> used;
  for (auto& [name, files] : by_name) {
    std::sort(files.begin(), files.end());
    if (files.size() > 1) throw Error("--embeddings_dir", "the prompt uses " + in_quotes(name) + ", which is in " + dir + " twice: " + files[0] + " and " + files[1]);
    if (!io::nests_inside(dir, files[0])) throw Error(files[0], "is a link that leads out of --embeddings_dir " + dir);
    used.push_back(files[0]);
  }
  return used;
}

void add_embeddings(const std::vector<Embedding>& embeddings, text::ClipTokenizer& tokenizer, models::ClipTextModel encoder) {
  for (const auto& e : embeddings) {
    if (!encoder) {
      tokenizer.add_embedding_token(e.token, e.vectors.size(0), e.path);
      continue;
    }
    const int64_t width = encoder->config().hidden_size;
    if (e.vectors.size(1) != width)
      throw Error(e.path, "has vectors of width " + std::to_string(e.vectors.size(1)) + "; this model's text encoder takes " +
                              std::to_string(width) + " (an embedding made for another model: SD 1.x is 768, SD 2.x 1024)");
    if (tokenizer.vocab_size() != encoder->config().vocab_size)
      throw Error(e.path, "cannot be added: the tokenizer has " + std::to_string(tokenizer.vocab_size()) + " tokens, the text encoder " +
                              std::to_string(encoder->config().vocab_size));
    tokenizer.add_embedding_token(e.token, e.vectors.size(0), e.path);
    encoder->append_token_embeddings(e.vectors);
  }
}

}  // namespace sdtune::embeddings
