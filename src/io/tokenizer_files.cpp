#include "io/tokenizer_files.h"

#include <filesystem>

#include "core/error.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "io/shipped_files.h"

namespace fs = std::filesystem;

namespace sdtune::io {

TokenizerFiles read_tokenizer_folder(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error(folder, "tokenizer folder does not exist");
  auto text_of = [&](const char* name, bool required) {
    const std::string path = (fs::path(folder) / name).string();
    return TokenizerFiles::Text{path, required ? read_file(path, kMaxJsonFileBytes, "tokenizer file")
                                               : read_file_if_exists(path, kMaxJsonFileBytes, "tokenizer file")};
  };
  return {text_of("vocab.json", true), text_of("merges.txt", true), text_of("tokenizer_config.json", false),
          text_of("special_tokens_map.json", false)};
}

TokenizerFiles shipped_clip_tokenizer(const std::string& pad_token) {
  const std::string where = "sdtune's CLIP tokenizer";
  const Json special = {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}, {"pad_token", pad_token},
                        {"unk_token", "<|endoftext|>"}};
  return {{where + " (vocab.json)", std::string(shipped_file("data/clip-tokenizer/vocab.json"))},
          {where + " (merges.txt)", std::string(shipped_file("data/clip-tokenizer/merges.txt"))},
          {where + " (tokenizer_config.json)", Json({{"model_max_length", 77}}).dump()},
          {where + " (special_tokens_map.json)", special.dump()}};
}

}  // namespace sdtune::io
