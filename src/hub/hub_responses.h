// What the Hugging Face Hub answers, parsed and checked before any of it names a file or a folder:
// the resolve endpoint's headers (commit, ETag, size, redirect), the model-info JSON (commit and file
// list), and which of the listed files a command needs. No network here (hub_http does that), so the
// fuzz target feeds these functions hostile answers directly.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdtune::hub {

// Response headers with lower-case names (HTTP names are case-insensitive).
using Headers = std::map<std::string, std::string>;

// One "Name: value" header line into `headers` (status lines and malformed lines are skipped).
void add_header_line(Headers& headers, const std::string& line);

struct FileMetadata {
  std::string commit;    // X-Repo-Commit: 40 hex digits
  std::string etag;      // X-Linked-Etag or ETag, without W/ and quotes: the blob's name in the cache
  int64_t size = -1;     // X-Linked-Size or Content-Length; -1 when the answer gives none
  std::string location;  // where the bytes are (a CDN redirect), else the resolve URL itself
};

// huggingface_hub's get_hf_file_metadata rules. Error naming `url` for a missing or malformed commit or
// ETag (an ETag becomes a file name: only [A-Za-z0-9._-], at most 128 characters, never "." or "..").
FileMetadata parse_file_metadata(const Headers& headers, const std::string& url, bool redirected);

struct RepoInfo {
  std::string commit;              // "sha"
  std::vector<std::string> files;  // siblings' "rfilename": relative paths, checked
};

// GET /api/models/{id}/revision/{rev}. Error naming `where` for malformed JSON, a bad sha, or a file
// name that would leave the snapshot folder (absolute, "..", backslashes, control characters).
RepoInfo parse_model_info(const std::string& json, const std::string& where);

// Checks one repository path as the Hub lists it; Error naming `where` when it is unsafe as a path.
void check_repo_path(const std::string& path, const std::string& where);

// The files of a diffusers repository that loading `components` needs (model_index.json, each
// component's config and safetensors weights of `variant` -- single file or index + shards --, the
// scheduler config, the tokenizer files); component "" is a repository that holds one component at
// its root (a VAE). `weights` false: configs and tokenizer only. Pickle-only weights are refused with
// the reason, before anything is downloaded.
std::vector<std::string> select_files(const std::vector<std::string>& files, const std::vector<std::string>& components,
                                      const std::string& variant, const std::string& repo, bool weights = true);

// The message for an HTTP error answer: 401/403 with the HF_TOKEN hint, 404 by X-Error-Code.
std::string describe_http_error(long status, const Headers& headers, const std::string& what);

}  // namespace sdtune::hub
