// A diffusers pipeline folder: model_index.json and one sub-folder per component, each with its
// config and weights. Knows file names only; what the files mean is for models/ and pipeline/.
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"

namespace sdtune::io {

class ModelFolder {
 public:
  // `root` must be a folder (see resolve_model_dir). model_index.json is read when present.
  explicit ModelFolder(std::string root);

  const std::string& root() const { return root_; }
  const Json& model_index() const { return model_index_; }

  // root/component, which must exist ("" is the root itself: a folder holding one component).
  std::string component_dir(const std::string& component) const;
  // config.json (scheduler: scheduler_config.json) of a component, parsed.
  Json component_config(const std::string& component) const;
  std::string component_config_path(const std::string& component) const;

  // The safetensors weight files of a component: one file, or the shards an *.index.json lists.
  // `variant` ("fp16", ...) selects e.g. diffusion_pytorch_model.fp16.safetensors. Pickle-only
  // components are refused with an explanation.
  std::vector<std::string> weight_files(const std::string& component, const std::string& variant = "") const;

 private:
  std::string root_;
  Json model_index_;
};

}  // namespace sdtune::io
