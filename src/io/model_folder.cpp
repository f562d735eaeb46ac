#include "io/model_folder.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/printable.h"
#include "io/model_source.h"

namespace fs = std::filesystem;

namespace sdtune::io {

ModelFolder::ModelFolder(std::string root) : root_(std::move(root)), model_index_(Json::object()) {
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) throw Error(root_, "model folder does not exist");
  const fs::path index = fs::path(root_) / "model_index.json";
  if (fs::exists(index, ec)) model_index_ = read_json_file(index.string());
}

std::string ModelFolder::component_dir(const std::string& component) const {
  const fs::path dir = fs::path(root_) / component;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(root_, "has no " + component + "/ folder (is it a diffusers pipeline folder?)");
  return dir.string();
}

std::string ModelFolder::component_config_path(const std::string& component) const {
  const fs::path dir = component_dir(component);
  for (const char* name : {"config.json", "scheduler_config.json"}) {
    std::error_code ec;
    if (fs::exists(dir / name, ec)) return (dir / name).string();
  }
  throw Error(dir.string(), "has no config.json");
}

Json ModelFolder::component_config(const std::string& component) const {
  return read_json_file(component_config_path(component));
}

static std::vector<std::string> shards_of(const fs::path& index_path) {
  const Json index = read_json_file(index_path.string());
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) throw Error(index_path.string(), "has no \"weight_map\" object");
  std::set<std::string> files;
  for (const auto& file : *map) {
    if (!file.is_string()) throw Error(index_path.string(), "weight_map values must be file names");
    const std::string name = file.get<std::string>();
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
      throw Error(index_path.string(), "shard name " + in_quotes(name) + " points outside the folder");
    files.insert((index_path.parent_path() / name).string());
  }
  return {files.begin(), files.end()};
}

std::vector<std::string> ModelFolder::weight_files(const std::string& component, const std::string& variant) const {
  const fs::path dir = component_dir(component);
  const std::string infix = variant.empty() ? "" : "." + variant;
  std::error_code ec;
  for (const char* base : {"diffusion_pytorch_model", "model"}) {
    const fs::path single = dir / (std::string(base) + infix + ".safetensors");
    if (fs::is_regular_file(single, ec)) return {single.string()};
    const fs::path index = dir / (std::string(base) + ".safetensors.index" + infix + ".json");
    if (fs::is_regular_file(index, ec)) return shards_of(index);
  }
  // Nothing usable: explain what is there instead.
  std::vector<std::string> present;
  for (const auto& entry : fs::directory_iterator(dir, ec)) present.push_back(entry.path().filename().string());
  std::sort(present.begin(), present.end());
  for (const auto& name : present)
    if (is_pickle_file(name) && (variant.empty() || name.find("." + variant + ".") != std::string::npos))
      throw Error((dir / name).string(), pickle_refusal(name));
  std::string listing;
  for (const auto& name : present) listing += (listing.empty() ? "" : ", ") + name;
  throw Error(dir.string(), "no " + (variant.empty() ? std::string() : variant + " variant ") +
                                "safetensors weights (expected diffusion_pytorch_model" + infix +
                                ".safetensors or model" + infix + ".safetensors; found: " +
                                (listing.empty() ? "nothing" : listing) + ")");
}

}  // namespace sdtune::io
