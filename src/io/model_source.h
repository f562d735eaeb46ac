// Where a model named on the command line lives: a local folder, or a Hub id resolved offline in the
// local Hugging Face cache (nothing is ever downloaded).
#pragma once
#include <string>
#include <vector>

namespace sdtune::io {

// The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::string hf_hub_cache_dir();

// Resolves `spec` (a folder, or "org/name") to a folder. `revision` is a branch/tag name under
// refs/ or a commit hash under snapshots/. Throws Error saying where it looked when nothing is found,
// and refuses pickle checkpoints (.ckpt/.bin/.pt/.pth) with an explanation.
std::string resolve_model_dir(const std::string& spec, const std::string& revision = "main");

// A dataset named by --dataset_name: a local folder, or a Hub dataset id in the local cache
// (<cache>/datasets--org--name/snapshots/<commit>).
std::string resolve_dataset_dir(const std::string& spec, const std::string& revision = "main");

// The message given for a pickle file: why it is refused and how to convert it.
std::string pickle_refusal(const std::string& path);

bool is_pickle_file(const std::string& path);

}  // namespace sdtune::io
