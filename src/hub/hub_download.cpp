#include "hub/hub_download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/printable.h"
#include "core/progress.h"
#include "hub/hub_http.h"
#include "hub/hub_responses.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

namespace fs = std::filesystem;

namespace sdtune::hub {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string endpoint() {
  std::string e = env("HF_ENDPOINT").empty() ? "https://huggingface.co" : env("HF_ENDPOINT");
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

// huggingface_hub's order: $HF_TOKEN, then the file `huggingface-cli login` writes.
std::string token() {
  if (!env("HF_TOKEN").empty()) return env("HF_TOKEN");
  const std::string home = env("HF_HOME").empty() ? env("HOME") + "/.cache/huggingface" : env("HF_HOME");
  std::string t = io::read_file_if_exists(home + "/token", 4096, "Hugging Face token file");
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

// The token as a header value: control characters in it would end the header and start another.
std::string checked_token() {
  const std::string t = token();
  for (unsigned char c : t)
    if (c < 0x20 || c == 0x7f) throw Error("HF_TOKEN", "contains control characters (a token is one line of letters and digits)");
  return t;
}

std::vector<std::string> request_headers() {
  std::vector<std::string> headers = {"User-Agent: sdtune/" SDTUNE_VERSION, "Accept-Encoding: identity"};
  const std::string t = checked_token();
  if (!t.empty()) headers.push_back("Authorization: Bearer " + t);
  return headers;
}

// HEAD of a resolve URL, following the Hub's relative redirects (renamed repositories) but not the
// absolute one to the CDN, whose Location is where the bytes are.
FileMetadata file_metadata(const std::string& url, const std::vector<std::string>& headers, const std::string& what) {
  std::string current = url;
  for (int hop = 0; hop < 10; ++hop) {
    const Response r = http_request("HEAD", current, headers);
    const std::string location = r.headers.count("location") ? r.headers.at("location") : "";
    if (r.status >= 300 && r.status < 400 && location.rfind("/", 0) == 0) {
      current = endpoint() + location;
      continue;
    }
    if (r.status >= 400) throw Error(what, describe_http_error(r.status, r.headers, what));
    return parse_file_metadata(r.headers, current, r.status >= 300 && r.status < 400);
  }
  throw Error(url, "the Hub redirected more than 10 times");
}

// An exclusive lock on one blob (<cache>/.locks/<repo folder>/<etag>.lock, huggingface_hub's place
// for them): two runs fetching the same file never append to one partial file.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) throw Error(path.string(), std::string("cannot lock the download: ") + std::strerror(errno));
  }
  ~BlobLock() { ::close(fd_); }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

// The blob of one file, downloaded (or resumed) unless the cache has it.
void fetch_blob(const FileMetadata& m, const fs::path& blob, const std::vector<std::string>& headers, const std::string& name) {
  const BlobLock lock(blob.parent_path().parent_path().parent_path() / ".locks" / blob.parent_path().parent_path().filename() /
                      (blob.filename().string() + ".lock"));
  std::error_code ec;
  if (fs::is_regular_file(blob, ec) && (m.size < 0 || int64_t(fs::file_size(blob, ec)) == m.size)) return;
  const fs::path partial = blob.string() + ".incomplete";
  int64_t have = fs::is_regular_file(partial, ec) ? int64_t(fs::file_size(partial, ec)) : 0;
  if (m.size >= 0 && have == m.size) return fs::rename(partial, blob);  // whole already: a run killed before its rename
  if (m.size >= 0 && have > m.size) fs::remove(partial), have = 0;      // longer than the file: not a prefix of it
  // A bar in MiB for files of a MiB or more (weights), redrawn when the count changes; configs go quietly.
  constexpr int64_t kMiB = 1 << 20;
  ProgressBar bar("Downloading " + name + " (MiB)", m.size / kMiB, m.size >= kMiB, have / kMiB);
  int64_t shown = -1;
  const Response r = http_download(m.location, headers, partial.string(), have, [&](int64_t bytes) {
    if (bytes / kMiB != shown) bar.update(shown = bytes / kMiB);
  });
  bar.finish();
  if (r.status >= 400) throw Error(name, describe_http_error(r.status, r.headers, name));
  const int64_t got = int64_t(fs::file_size(partial, ec));
  if (m.size >= 0 && got != m.size)
    throw Error(name, "the download ended after " + std::to_string(got) + " of " + std::to_string(m.size) +
                          " bytes (kept in " + partial.string() + "; the next run resumes it)");
  fs::rename(partial, blob);
}

// snapshots/<commit>/<name> -> ../../blobs/<etag> (one more ../ per folder in name), replaced atomically.
void link_snapshot_file(const fs::path& repo, const std::string& commit, const std::string& name, const std::string& etag) {
  const fs::path link = repo / "snapshots" / commit / name;
  fs::create_directories(link.parent_path());
  std::string target = "../../blobs/" + etag;
  for (char c : name)
    if (c == '/') target = "../" + target;
  const fs::path tmp = link.string() + ".tmp-link";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp);
  fs::rename(tmp, link);
}

}  // namespace

std::string repo_cache_folder(const std::string& cache_dir, const std::string& repo_id, const std::string& kind) {
  std::string folder = kind + "--";
  for (char c : repo_id) folder += (c == '/') ? std::string("--") : std::string(1, c);
  return (fs::path(cache_dir) / folder).string();
}

std::string download_snapshot(const SnapshotRequest& request, const std::string& cache_dir) {
  check_repo_path(request.revision, "--revision");
  const auto headers = request_headers();
  const std::string what = request.repo_id + " (revision " + in_quotes(request.revision) + ")";
  const std::string info_url = endpoint() + "/api/models/" + request.repo_id + "/revision/" + url_encode(request.revision, false);
  const Response info = http_request("GET", info_url, headers);
  if (info.status != 200) throw Error(request.repo_id, describe_http_error(info.status, info.headers, what));
  const RepoInfo repo_info = parse_model_info(info.body, info_url);
  const auto files = select_files(repo_info.files, request.components, request.variant, request.repo_id, request.weights);
  if (files.empty()) throw Error(request.repo_id, "has none of the files a diffusers model needs (model_index.json, unet/, vae/, ...)");

  const fs::path repo = repo_cache_folder(cache_dir, request.repo_id, "models");
  try {
    fs::create_directories(repo / "blobs");
    for (const auto& name : files) {
      const std::string url = endpoint() + "/" + request.repo_id + "/resolve/" + repo_info.commit + "/" + url_encode(name, true);
      const FileMetadata m = file_metadata(url, headers, request.repo_id + "/" + name);
      fetch_blob(m, repo / "blobs" / m.etag, headers, name);
      link_snapshot_file(repo, repo_info.commit, name, m.etag);
    }
    if (request.revision != repo_info.commit) {
      const fs::path ref = repo / "refs" / request.revision;
      fs::create_directories(ref.parent_path());
      // A branch moves: its ref file, read when the cache was looked at, is rewritten on purpose.
      io::write_file_atomically(ref.string(), [&](std::ostream& out) { out << repo_info.commit; }, io::OntoInput::Allow);
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(e.path1().string(), std::string("cannot write to the Hugging Face cache: ") + e.code().message());
  }
  return (repo / "snapshots" / repo_info.commit).string();
}

}  // namespace sdtune::hub
