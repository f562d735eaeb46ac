// Where a model named on the command line lives: a local folder, or a Hub id resolved in the local
// Hugging Face cache, downloaded into it when missing (unless offline).
#pragma once
#include <string>
#include <vector>

namespace sdtune::io {

// The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::string hf_hub_cache_dir();

// The folders of a diffusers Stable Diffusion pipeline that sdtune loads.
inline const std::vector<std::string>& pipeline_components() {
  static const std::vector<std::string> all = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
  return all;
}

// What a Hub id needs when it is not (all) in the local cache.
struct HubOptions {
  bool offline = false;                 // --offline; HF_HUB_OFFLINE=1 also means it
  std::string variant;                  // weight files of this variant (fp16: *.fp16.safetensors)
  std::vector<std::string> components;  // the folders the command loads ("" a repository's root); none: the
                                        // cache only (LoRA and dataset ids), nothing downloaded
  bool weights = true;                  // false: configs and tokenizer only (--config)
};

// True when HF_HUB_OFFLINE says so (1, true, yes, on: huggingface_hub's rule).
bool hub_offline_by_environment();

// Resolves `spec` (a folder, or "org/name") to a folder. `revision` is a branch/tag name under
// refs/ or a commit hash under snapshots/. A Hub id whose snapshot (or one of the components asked
// for) is not in the cache is downloaded (hub/hub_download.h) unless offline. Throws Error saying
// where it looked when nothing is found, and refuses pickle checkpoints (.ckpt/.bin/.pt/.pth) with
// an explanation.
std::string resolve_model_dir(const std::string& spec, const std::string& revision = "main", const HubOptions& hub = {});

// A dataset named by --dataset_name: a local folder, or a Hub dataset id in the local cache
// (<cache>/datasets--org--name/snapshots/<commit>).
std::string resolve_dataset_dir(const std::string& spec, const std::string& revision = "main");

// "name" or "org/name" as the Hub allows repository ids (no path separators beyond the one slash, no "..").
bool is_hub_id(const std::string& spec);

// The message given for a pickle file: why it is refused and how to convert it.
std::string pickle_refusal(const std::string& path);

bool is_pickle_file(const std::string& path);

}  // namespace sdtune::io
