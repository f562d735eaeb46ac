// `sdtune publish`: a training output folder -> a Hub-ready LoRA repository folder (the LoRA only,
// sample images, model card, .gitattributes), its check, and a git push of it.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace sdtune::publish {

struct PublishOptions {
  std::string output_dir;  // a `sdtune train` output folder
  std::string repo_dir;    // the folder to fill (created when missing)
  std::string checkpoint;  // "": the final LoRA; "latest" or N: output_dir/checkpoint-N
  std::string repo_id;     // "user/name" for the card's usage lines (default: from the push URL or the folder name)
  std::string base_model;  // overrides the LoRA metadata's
  std::string license;     // default: the base model family's license
  bool kohya = false;      // also <repo name>.safetensors in kohya keys
  bool allow_large = false;
};

// Files above this are not LoRAs of SD 1.x/2.x (a rank-128 LoRA is ~100 MB) but most likely base weights.
constexpr uint64_t kLargeFileBytes = 200ull << 20;

// Builds the folder; returns the files written (relative to repo_dir).
std::vector<std::string> publish_folder(const PublishOptions& options);

// Problems of a published folder (empty: fine): card YAML, required card fields, widget images,
// weights that load, sizes, LFS attributes, no training state or base weights.
std::vector<std::string> check_published(const std::string& repo_dir);

// Commits the folder with git and pushes it to `remote` (branch main). Uses git-lfs when installed
// (else says so); an https remote gets HF_TOKEN through a credential helper, never on a command line.
void push_folder(const std::string& repo_dir, const std::string& remote, const std::function<void(const std::string&)>& say);

// "https://huggingface.co/user/name(.git)" -> "user/name"; "" for other remotes.
std::string hub_repo_id(const std::string& remote);

}  // namespace sdtune::publish
