#include "publish/publish.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/model_source.h"
#include "io/subprocess.h"
#include "lora/lora_file.h"
#include "publish/model_card.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace sdtune::publish {

namespace {

const char* const kWeights = "pytorch_lora_weights.safetensors";

// Files of a training folder: a LoRA, samples, a card. Larger ones are refused before copying.
constexpr uint64_t kMaxPublishedFileBytes = 4ull << 30;

std::string read_text(const fs::path& path) { return io::read_file(path.string(), kMaxPublishedFileBytes, "file"); }

void copy_atomically(const fs::path& from, const fs::path& to) {
  const std::string bytes = read_text(from);
  io::write_file_atomically(to.string(), [&](std::ostream& out) { out << bytes; });
}

std::string folder_name(const std::string& path) {
  fs::path p = fs::absolute(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// Files that belong to a base model or to training state, wherever they are in the tree.
bool is_model_or_training_state(const fs::path& path) {
  static const std::set<std::string> names{"model_index.json", "optimizer.pt", "random_states.safetensors", "state.json", "scheduler.bin",
                                           "scaler.pt", "pytorch_model.bin", "unet", "text_encoder", "vae"};
  const std::string name = path.filename().string();
  return names.count(name) || name.rfind("diffusion_pytorch_model", 0) == 0;
}

// What would make the folder more than a LoRA: a diffusers pipeline, training state, huge files,
// anywhere below `dir` (a checkpoint-N/ or unet/ folder one level down is found as well).
std::vector<std::string> unwanted_content(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    const std::string relative = fs::relative(it->path(), dir).string();
    if (is_model_or_training_state(it->path())) {
      found.push_back(relative + " (base model or training state)");
      it.disable_recursion_pending();
    }
    else if (it->is_regular_file(ec) && it->file_size(ec) > kLargeFileBytes)
      found.push_back(relative + " (" + std::to_string(it->file_size(ec) >> 20) + " MB)");
  }
  return found;
}

std::string source_folder(const PublishOptions& o) {
  if (o.checkpoint.empty()) {
    if (!fs::exists(fs::path(o.output_dir) / kWeights)) {
      const auto checkpoints = train::list_checkpoints(o.output_dir);
      throw Error(o.output_dir, std::string("has no ") + kWeights +
                                    (checkpoints.empty() ? " (is it a `sdtune train` output folder?)"
                                                         : " (the run did not finish; publish a checkpoint with --checkpoint latest)"));
    }
    return o.output_dir;
  }
  // Always inside output_dir (a bare "checkpoint-N" must not match a folder of the current directory).
  const std::string spec = o.checkpoint == "latest" ? "latest" : (fs::path(o.output_dir) / ("checkpoint-" + o.checkpoint)).string();
  const std::string path = train::find_checkpoint(o.output_dir, spec);
  if (path.empty()) throw Error(o.output_dir, "has no checkpoint-N folder");
  return path;
}

// The sample images of the newest validation at or before `max_step`, from samples/samples.jsonl.
std::vector<std::pair<std::string, std::string>> newest_samples(const std::string& output_dir, int64_t max_step) {
  const fs::path log = fs::path(output_dir) / "samples" / "samples.jsonl";
  std::istringstream in(io::read_file_if_exists(log.string(), kMaxPublishedFileBytes, "samples log"));
  std::vector<std::pair<std::string, std::string>> chosen;  // file, prompt
  int64_t chosen_step = -1;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("file") || !j["file"].is_string() ||
        !j.contains("prompt") || !j["prompt"].is_string())
      continue;
    const int64_t step = j["step"].get<int64_t>();
    if (step > max_step || step < chosen_step) continue;
    if (step > chosen_step) chosen.clear(), chosen_step = step;
    const std::string file = j["file"].get<std::string>();
    if (file.find('/') == std::string::npos && fs::exists(fs::path(output_dir) / "samples" / file))
      chosen.emplace_back(file, j["prompt"].get<std::string>());
  }
  return chosen;
}

}  // namespace

std::string hub_repo_id(const std::string& remote) {
  // std::regex recurses per character: a remote longer than any Hub URL is not matched at all.
  if (remote.size() > 512) return "";
  static const std::regex hub(R"(^https://(?:[^@/]+@)?huggingface\.co/([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*?)(?:\.git)?/?$)");
  std::smatch m;
  return std::regex_match(remote, m, hub) ? m[1].str() : "";
}

std::vector<std::string> publish_folder(const PublishOptions& o) {
  const std::string source = source_folder(o);
  const fs::path weights = fs::path(source) / kWeights;
  if (fs::file_size(weights) > kLargeFileBytes && !o.allow_large)
    throw Error(weights.string(), "is " + std::to_string(fs::file_size(weights) >> 20) +
                                      " MB: too large for a LoRA (is it a whole model?); --allow_large publishes it anyway");
  const lora::LoraFile lora = lora::read_lora(weights.string());
  const std::string base_model =
      o.base_model.empty() ? (lora.metadata.count("sdtune_base_model") ? lora.metadata.at("sdtune_base_model") : "") : o.base_model;
  // The Hub links a card's base_model to that model's page: a path on this machine means nothing there.
  std::error_code ec;
  if (o.base_model.empty() && !base_model.empty() && (!io::is_hub_id(base_model) || fs::exists(base_model, ec)))
    throw Error("--base_model", "is needed: the LoRA was trained on " + in_quotes(printable(base_model)) +
                                    ", a local path, and the card's base_model must be a Hub model id (e.g. stabilityai/stable-diffusion-2)");
  fs::create_directories(o.repo_dir);
  const auto unwanted = unwanted_content(o.repo_dir);
  if (!unwanted.empty() && !o.allow_large) {
    std::string list;
    for (const auto& u : unwanted) list += "\n  " + u;
    throw Error(o.repo_dir, "holds more than a LoRA (remove it or pass --allow_large):" + list);
  }

  std::vector<std::string> written;
  // Rewritten, not copied: a LoRA trained before alphas were folded gets the form every tool reads alike.
  lora::write_lora(lora, (fs::path(o.repo_dir) / kWeights).string(), lora::LoraFormat::Diffusers);
  written.push_back(kWeights);
  const std::string name = folder_name(o.repo_dir);
  CardInfo card;
  card.repo_id = o.repo_id.empty() ? "your-username/" + name : o.repo_id;
  card.metadata = lora.metadata;
  card.base_model = base_model;
  const std::string family = lora.metadata.count("ss_base_model_version") ? lora.metadata.at("ss_base_model_version") : "";
  card.license = o.license.empty() ? default_license(family) : o.license;
  card.trigger_word = lora.metadata.count("sdtune_trigger_word") ? lora.metadata.at("sdtune_trigger_word") : "";
  if (o.kohya) {
    card.kohya_file = name + ".safetensors";
    lora::write_lora(lora, (fs::path(o.repo_dir) / card.kohya_file).string(), lora::LoraFormat::Kohya);
    written.push_back(card.kohya_file);
  }
  fs::remove_all(fs::path(o.repo_dir) / "samples");  // only this publication's samples
  const int64_t step = lora.metadata.count("sdtune_steps") ? std::stoll(lora.metadata.at("sdtune_steps")) : INT64_MAX;
  for (const auto& [file, prompt] : newest_samples(o.output_dir, step)) {
    fs::create_directories(fs::path(o.repo_dir) / "samples");
    copy_atomically(fs::path(o.output_dir) / "samples" / file, fs::path(o.repo_dir) / "samples" / file);
    written.push_back("samples/" + file);
    card.samples.push_back({"samples/" + file, prompt});
  }
  io::write_file_atomically((fs::path(o.repo_dir) / "README.md").string(), [&](std::ostream& out) { out << model_card(card); });
  written.push_back("README.md");
  io::write_file_atomically((fs::path(o.repo_dir) / ".gitattributes").string(), [](std::ostream& out) {
    for (const char* pattern : {"*.safetensors", "*.png", "*.jpg", "*.jpeg", "*.webp"})
      out << pattern << " filter=lfs diff=lfs merge=lfs -text\n";
  });
  written.push_back(".gitattributes");
  return written;
}

std::vector<std::string> check_published(const std::string& repo_dir) {
  std::vector<std::string> problems;
  const fs::path dir(repo_dir);
  if (!fs::is_directory(dir)) return {repo_dir + ": no such folder"};
  const fs::path readme = dir / "README.md";
  if (!fs::exists(readme)) {
    problems.push_back("README.md: missing (the model card)");
  } else {
    try {
      const YAML::Node card = YAML::Load(front_matter(read_text(readme), readme.string()));
      if (!card.IsMap()) throw Error(readme.string(), "front matter is not a YAML mapping");
      if (!card["library_name"] || card["library_name"].as<std::string>() != "diffusers")
        problems.push_back("README.md: library_name must be diffusers (load_lora_weights and the Hub's widget rely on it)");
      if (!card["base_model"]) problems.push_back("README.md: no base_model");
      if (!card["license"]) problems.push_back("README.md: no license");
      std::set<std::string> tags;
      if (card["tags"] && card["tags"].IsSequence())
        for (const auto& t : card["tags"]) tags.insert(t.as<std::string>());
      for (const char* tag : {"lora", "text-to-image"})
        if (!tags.count(tag)) problems.push_back(std::string("README.md: tags lack ") + tag);
      if (card["widget"])
        for (const auto& w : card["widget"]) {
          const std::string url = w["output"] && w["output"]["url"] ? w["output"]["url"].as<std::string>() : "";
          const fs::path image(url);
          // Only a relative path that stays in the folder is pushed with it (an existing ../x or /x is not).
          const bool inside = !url.empty() && image.is_relative() && std::find(image.begin(), image.end(), "..") == image.end();
          if (!inside || !fs::is_regular_file(dir / image))
            problems.push_back("README.md: a widget's image " + in_quotes(url) + " is not a file inside the folder");
        }
    } catch (const YAML::Exception& e) {
      problems.push_back("README.md: the YAML front matter does not parse: " + std::string(e.what()));
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  const fs::path weights = dir / kWeights;
  if (!fs::exists(weights)) {
    problems.push_back(std::string(kWeights) + ": missing");
  } else {
    try {
      const auto lora = lora::read_lora(weights.string());
      if (lora.format != "diffusers") problems.push_back(std::string(kWeights) + ": " + lora.format + " keys; load_lora_weights expects diffusers keys");
      for (const auto& m : lora.modules)
        if (m.alpha && *m.alpha != double(m.rank())) {
          problems.push_back(std::string(kWeights) + ": alpha " + std::to_string(*m.alpha) + " differs from rank " + std::to_string(m.rank()) +
                             " and is kept only in metadata, so A1111, ComfyUI and stable-diffusion.cpp apply " + in_quotes(m.key_prefix) +
                             " at another strength than diffusers (`sdtune lora convert --format diffusers` folds it in)");
          break;
        }
    } catch (const std::exception& e) {
      problems.push_back(std::string("does not load: ") + e.what());
    }
  }
  const std::string attributes = io::read_file_if_exists((dir / ".gitattributes").string(), kMaxPublishedFileBytes, "file");
  if (attributes.find("*.safetensors filter=lfs") == std::string::npos)
    problems.push_back(".gitattributes: *.safetensors is not stored with LFS (the Hub rejects large plain files)");
  for (const auto& u : unwanted_content(dir)) problems.push_back("holds " + u);
  return problems;
}

void push_folder(const std::string& repo_dir, const std::string& remote, const std::function<void(const std::string&)>& say) {
  const char* token_env = std::getenv("HF_TOKEN");
  const std::string token = token_env ? token_env : "";
  auto git = [&](std::vector<std::string> args, bool must_succeed = true) {
    std::vector<std::string> argv{"git"};
    if (!token.empty() && remote.rfind("https://", 0) == 0) {
      // The helper reads the token from the environment when git asks: it is never in argv or output.
      argv.insert(argv.end(), {"-c", "credential.helper=", "-c",
                               "credential.helper=!f() { test \"$1\" = get && echo username=hf_user && echo \"password=$HF_TOKEN\"; }; f"});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = io::run_process(argv, repo_dir, {{"GIT_TERMINAL_PROMPT", "0"}});
    for (size_t at; !token.empty() && (at = result.output.find(token)) != std::string::npos;) result.output.replace(at, token.size(), "***");
    if (result.exit_code == 127 && args[0] == "--version") throw Error("--push", "git is not installed (apt-get install git)");
    if (must_succeed && result.exit_code != 0)
      throw Error(repo_dir, "git " + args[0] + " failed (exit " + std::to_string(result.exit_code) + "): " + result.output);
    return result;
  };
  git({"--version"});
  if (!fs::exists(fs::path(repo_dir) / ".git")) git({"init", "-q", "-b", "main"});
  const bool lfs = git({"lfs", "version"}, false).exit_code == 0;
  if (lfs) {
    git({"lfs", "install", "--local"});
  } else {
    say("git-lfs is not installed: pushing the files as plain git objects (fine for remotes that take them; the Hugging Face Hub "
        "needs LFS for files over 10 MB: apt-get install git-lfs)");
  }
  git({"add", "-A"});
  const bool has_identity = !git({"config", "user.email"}, false).output.empty();
  std::vector<std::string> commit{"commit", "-q", "-m", "Upload LoRA with sdtune publish"};
  if (!has_identity) commit.insert(commit.begin(), {"-c", "user.name=sdtune", "-c", "user.email=sdtune@localhost"});
  if (git({"status", "--porcelain"}).output.empty()) say("nothing changed since the last commit");
  else git(commit);
  git({"push", "-q", remote, "HEAD:main"});
  say("pushed " + repo_dir + " to " + remote + (lfs ? " (with git-lfs)" : ""));
}

}  // namespace sdtune::publish
