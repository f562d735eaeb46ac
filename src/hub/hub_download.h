// Downloading the files of a Hub repository that a command needs into the local Hugging Face cache,
// in huggingface_hub's layout so that Python tools share it:
//   <cache>/models--org--name/blobs/<etag>            the bytes (partial: <etag>.incomplete, resumed)
//   <cache>/models--org--name/snapshots/<commit>/<f>  relative symlinks to the blobs
//   <cache>/models--org--name/refs/<revision>         the commit a branch or tag pointed to
// $HF_ENDPOINT (default https://huggingface.co) and $HF_TOKEN (else $HF_HOME/token) as huggingface_hub.
#pragma once
#include <string>
#include <vector>

namespace sdtune::hub {

struct SnapshotRequest {
  std::string repo_id;  // org/name, already checked
  std::string revision = "main";
  std::string variant;                  // weight files of this variant
  std::vector<std::string> components;  // what the command loads (see select_files)
  bool weights = true;                  // false: configs and tokenizer only
};

// Downloads what is missing and returns the snapshot folder. Prints one progress line per file on
// stderr. Every failure is one Error (network, 401 with the HF_TOKEN hint, 404, disk full).
std::string download_snapshot(const SnapshotRequest& request, const std::string& cache_dir);

// The repository's folder in the cache: <cache>/<kind>--org--name.
std::string repo_cache_folder(const std::string& cache_dir, const std::string& repo_id, const std::string& kind);

}  // namespace sdtune::hub
