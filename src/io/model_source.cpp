#include "io/model_source.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/printable.h"
#include "hub/hub_download.h"
#include "io/input_file.h"

namespace fs = std::filesystem;

namespace sdtune::io {

static std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string hf_hub_cache_dir() {
  if (!env("HF_HUB_CACHE").empty()) return env("HF_HUB_CACHE");
  if (!env("HF_HOME").empty()) return (fs::path(env("HF_HOME")) / "hub").string();
  std::string home = env("HOME");
  if (home.empty()) home = ".";
  return (fs::path(home) / ".cache" / "huggingface" / "hub").string();
}

bool is_pickle_file(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  return ext == ".ckpt" || ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".pkl";
}

std::string pickle_refusal(const std::string& path) {
  return "is a pickle file (" + fs::path(path).extension().string() +
         "); sdtune does not load pickle because unpickling can run arbitrary code. Convert it to "
         "safetensors on a trusted machine, e.g. with Python: `from safetensors.torch import save_file; "
         "save_file(torch.load(\"" + fs::path(path).filename().string() +
         "\", map_location=\"cpu\"), \"model.safetensors\")`, or for a whole pipeline "
         "`StableDiffusionPipeline.from_pretrained(...).save_pretrained(DIR, safe_serialization=True)`";
}

static std::string read_first_line(const fs::path& p) {
  std::istringstream in(read_file(p.string(), 1 << 16, "Hub cache ref file"));
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\n')) line.pop_back();
  return line;
}

// "name" or "org/name" as the Hub allows them: each part 1..96 of [A-Za-z0-9._-], starting with a
// letter or digit, no "..". Checked by hand: std::regex recurses per character and overflowed the
// stack on a 128 KB --model.
bool is_hub_id(const std::string& spec) {
  const size_t slash = spec.find('/');
  auto valid_part = [](const std::string& part) {
    if (part.empty() || part.size() > 96 || !std::isalnum(static_cast<unsigned char>(part[0]))) return false;
    return std::all_of(part.begin(), part.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
  };
  if (spec.find("..") != std::string::npos) return false;
  if (slash == std::string::npos) return valid_part(spec);
  return valid_part(spec.substr(0, slash)) && valid_part(spec.substr(slash + 1));
}

bool hub_offline_by_environment() {
  std::string value = env("HF_HUB_OFFLINE");
  for (char& c : value) c = char(std::tolower(static_cast<unsigned char>(c)));
  return value == "1" || value == "true" || value == "yes" || value == "on";
}

// <cache>/<kind>--org--name/snapshots/<commit of revision>, or "" when the cache lacks it (`why` says).
static std::string cached_snapshot(const std::string& spec, const std::string& revision, const std::string& kind, std::string* why) {
  std::error_code ec;
  const fs::path repo = hub::repo_cache_folder(hf_hub_cache_dir(), spec, kind);
  if (!fs::is_directory(repo, ec)) {
    *why = "not a local folder and not in the Hugging Face cache: looked for " + repo.string();
    return "";
  }
  std::string commit = revision;
  const fs::path ref = repo / "refs" / revision;
  if (revision.find("..") == std::string::npos && fs::is_regular_file(ref, ec)) commit = read_first_line(ref);
  const fs::path snapshot = repo / "snapshots" / commit;
  // A ref file (or --revision) names one folder inside snapshots/, never a way out of it.
  if (commit.empty() || commit == "." || commit == ".." || commit.find('/') != std::string::npos || !fs::is_directory(snapshot, ec)) {
    *why = "the Hugging Face cache has " + repo.string() + " but no snapshot for revision " + in_quotes(revision) + " (looked at " +
           ref.string() + " and " + snapshot.string() + ")";
    return "";
  }
  return snapshot.string();
}

// Whether a cached snapshot has every folder a command loads (a tokenize run may have fetched only tokenizer/).
static bool has_components(const std::string& snapshot, const std::vector<std::string>& components) {
  std::error_code ec;
  for (const auto& c : components)
    if (!fs::exists(fs::path(snapshot) / (c.empty() ? "config.json" : c), ec)) return false;
  return true;
}

// "org/name" -> the snapshot folder of `revision`, from the cache or downloaded into it.
static std::string resolve_hub_snapshot(const std::string& spec, const std::string& revision, const std::string& kind,
                                        const HubOptions& hub) {
  if (!is_hub_id(spec))
    throw Error(spec, "no such folder, and not a Hugging Face id of the form org/name");
  std::string why;
  const std::string snapshot = cached_snapshot(spec, revision, kind, &why);
  if (!snapshot.empty() && has_components(snapshot, hub.components)) return snapshot;
  if (kind == "models" && !hub.components.empty() && !hub.offline && !hub_offline_by_environment())
    return hub::download_snapshot({spec, revision, hub.variant, hub.components, hub.weights}, hf_hub_cache_dir());
  const std::string download = kind == "datasets" ? "huggingface-cli download --repo-type dataset " : "huggingface-cli download ";
  throw Error(spec, (snapshot.empty() ? why : "the cached snapshot " + snapshot + " lacks files this command needs") +
                        (kind == "models" ? " (offline: --offline or HF_HUB_OFFLINE; without them sdtune downloads it)" : "") +
                        " (download it with `" + download + spec + "` and copy the cache here, set HF_HUB_CACHE or HF_HOME to where it is, or pass a folder)");
}

std::string resolve_model_dir(const std::string& spec, const std::string& revision, const HubOptions& hub) {
  if (spec.empty()) throw Error("--model", "no model given");
  std::error_code ec;
  if (fs::is_directory(spec, ec)) return spec;
  if (fs::is_regular_file(spec, ec)) {
    if (is_pickle_file(spec)) throw Error(spec, pickle_refusal(spec));
    throw Error(spec, "is a file but not a .safetensors checkpoint; sdtune takes a diffusers model folder (model_index.json, "
                      "unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a single-file .safetensors checkpoint");
  }
  return resolve_hub_snapshot(spec, revision, "models", hub);
}

std::string resolve_dataset_dir(const std::string& spec, const std::string& revision) {
  if (spec.empty()) throw Error("--dataset_name", "no dataset given");
  std::error_code ec;
  if (fs::is_directory(spec, ec)) return spec;
  return resolve_hub_snapshot(spec, revision, "datasets", {});
}

}  // namespace sdtune::io
