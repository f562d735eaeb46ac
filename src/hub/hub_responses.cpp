#include "hub/hub_responses.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"
#include "io/model_source.h"

namespace sdtune::hub {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::string header(const Headers& headers, const std::string& name) {
  const auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

bool is_commit(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c)); });
}

int64_t parse_size(const std::string& text, const std::string& url) {
  if (text.empty()) return -1;
  if (text.size() > 16 || text.find_first_not_of("0123456789") != std::string::npos)
    throw Error(url, "the Hub's answer has a file size that is not a number: " + in_quotes(text));
  return std::stoll(text);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "diffusion_pytorch_model[-00001-of-00002][.fp16].safetensors" or "model...": the weight file names
// ModelFolder reads (and the index beside them).
bool is_weight_file(const std::string& name, const std::string& variant) {
  const std::string infix = variant.empty() ? "" : "." + variant;
  for (const std::string base : {"diffusion_pytorch_model", "model"}) {
    if (name == base + infix + ".safetensors" || name == base + ".safetensors.index" + infix + ".json") return true;
    // shards: base-00001-of-00002<infix>.safetensors
    const std::string tail = infix + ".safetensors";
    if (name.rfind(base + "-", 0) != 0 || !ends_with(name, tail)) continue;
    const std::string numbers = name.substr(base.size() + 1, name.size() - base.size() - 1 - tail.size());
    if (numbers.size() == 14 && numbers.substr(5, 4) == "-of-" &&
        std::all_of(numbers.begin(), numbers.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == 'o' || c == 'f'; }))
      return true;
  }
  return false;
}

}  // namespace

void add_header_line(Headers& headers, const std::string& line) {
  const size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) return;
  const std::string name = lower(trim(line.substr(0, colon)));
  if (name.empty() || name.size() > 256 || headers.size() >= 1000) return;
  headers[name] = trim(line.substr(colon + 1)).substr(0, 8192);
}

FileMetadata parse_file_metadata(const Headers& headers, const std::string& url, bool redirected) {
  FileMetadata m;
  m.commit = header(headers, "x-repo-commit");
  if (!is_commit(m.commit))
    throw Error(url, "the Hub's answer has no valid X-Repo-Commit header (got " + in_quotes(m.commit) + "); is HF_ENDPOINT a Hugging Face Hub?");
  std::string etag = header(headers, "x-linked-etag");
  if (etag.empty()) etag = header(headers, "etag");
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  const bool safe = !etag.empty() && etag.size() <= 128 && etag != "." && etag != ".." &&
                    std::all_of(etag.begin(), etag.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; });
  if (!safe) throw Error(url, "the Hub's answer has no usable ETag (got " + in_quotes(etag) + ")");
  m.etag = etag;
  m.size = parse_size(header(headers, "x-linked-size"), url);
  if (m.size < 0 && !redirected) m.size = parse_size(header(headers, "content-length"), url);
  m.location = redirected ? header(headers, "location") : url;
  if (m.location.empty()) m.location = url;
  return m;
}

void check_repo_path(const std::string& path, const std::string& where) {
  bool safe = !path.empty() && path.size() <= 1024 && path[0] != '/' && path.find('\\') == std::string::npos;
  for (unsigned char c : path) safe = safe && c >= 0x20 && c != 0x7f;
  size_t start = 0;
  while (safe && start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string part = path.substr(start, end - start);
    safe = !part.empty() && part != "." && part != "..";
    start = end + 1;
  }
  if (!safe) throw Error(where, "lists a file whose name is not a safe relative path: " + in_quotes(path));
}

RepoInfo parse_model_info(const std::string& json, const std::string& where) {
  const io::Json info = io::parse_json_text(json, where);
  if (!info.is_object()) throw Error(where, "the Hub's model info is not a JSON object");
  RepoInfo repo;
  repo.commit = io::config_value<std::string>(info, "sha", "", where);
  if (!is_commit(repo.commit)) throw Error(where, "the Hub's model info has no valid commit (\"sha\": " + in_quotes(repo.commit) + ")");
  const auto siblings = info.find("siblings");
  if (siblings == info.end() || !siblings->is_array()) throw Error(where, "the Hub's model info has no \"siblings\" list of files");
  if (siblings->size() > 100000) throw Error(where, "the Hub's model info lists more than 100000 files");
  for (const auto& sibling : *siblings) {
    if (!sibling.is_object()) throw Error(where, "a \"siblings\" entry is not an object");
    const std::string name = io::config_required<std::string>(sibling, "rfilename", where);
    check_repo_path(name, where);
    repo.files.push_back(name);
  }
  return repo;
}

std::vector<std::string> select_files(const std::vector<std::string>& files, const std::vector<std::string>& components,
                                      const std::string& variant, const std::string& repo, bool weights_wanted) {
  const std::set<std::string> present(files.begin(), files.end());
  std::vector<std::string> chosen;
  auto take = [&](const std::string& name) {
    if (present.count(name)) chosen.push_back(name);
  };
  take("model_index.json");
  for (const std::string& component : components) {
    const std::string dir = component.empty() ? "" : component + "/";
    if (component == "tokenizer") {
      for (const char* name : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"}) take(dir + name);
      continue;
    }
    if (component == "scheduler") {
      take(dir + "scheduler_config.json");
      continue;
    }
    take(dir + "config.json");
    if (!weights_wanted) continue;
    bool weights = false, pickle = false;
    for (const auto& name : files) {
      if (name.compare(0, dir.size(), dir) != 0 || name.find('/', dir.size()) != std::string::npos) continue;
      const std::string file = name.substr(dir.size());
      if (is_weight_file(file, variant)) chosen.push_back(name), weights = true;
      else if (io::is_pickle_file(file)) pickle = true;
    }
    if (!weights && present.count(dir + "config.json"))
      throw Error(repo, "has no " + (variant.empty() ? std::string() : variant + " variant ") + "safetensors weights for " +
                            (component.empty() ? std::string("its model") : component) +
                            (pickle ? " (only pickle files, which sdtune does not load because unpickling can run code)" : ""));
  }
  std::sort(chosen.begin(), chosen.end());
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  return chosen;
}

std::string describe_http_error(long status, const Headers& headers, const std::string& what) {
  const std::string code = header(headers, "x-error-code");
  if (status == 401 || status == 403)
    return "the Hub refused access to " + what + " (HTTP " + std::to_string(status) +
           "): a private or gated repository needs a token with read access in HF_TOKEN (and, for a gated "
           "model, its licence accepted on the model's page)";
  if (status == 404) {
    if (code == "RevisionNotFound") return "no such revision on the Hub: " + what;
    if (code == "EntryNotFound") return "no such file on the Hub: " + what;
    return "not found on the Hub (repository, revision or file): " + what;
  }
  if (status == 429) return "the Hub is rate-limiting requests (HTTP 429) for " + what + "; try again later";
  return "the Hub answered HTTP " + std::to_string(status) + " for " + what;
}

}  // namespace sdtune::hub
