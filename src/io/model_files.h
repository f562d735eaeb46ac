// The files of the model a command names: a diffusers folder, or a single-file checkpoint completed by
// the configs and tokenizer of its family (or of a --config folder), with an optional separate VAE.
// Everything above io/ asks this for configs, weights and tokenizer text and never learns which it was.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/model_folder.h"
#include "io/model_source.h"
#include "io/safetensors.h"
#include "io/tokenizer_files.h"

namespace sdtune::io {

class SingleFileCheckpoint;
struct ModelFamily;

// What the command line says about the model.
struct ModelSpec {
  std::string model;            // a diffusers folder, a single .safetensors checkpoint, or a Hub id in the cache
  std::string revision = "main";
  std::string config_dir;       // --config: a diffusers folder whose configs and tokenizer a single file takes
  std::string vae;              // --vae: a VAE (diffusers folder or Hub id, or a single file) instead of the model's
  std::string prediction_type;  // "", epsilon or v_prediction: replaces the scheduler's (and picks SD 2 base/768-v)
  // For a Hub id not in the cache: what to download (the variant's weights of these components) or,
  // offline, to refuse.
  std::string variant;
  std::vector<std::string> components = pipeline_components();
  bool offline = false;
};

// A spec naming just the model (and, for a single file, a --config folder).
inline ModelSpec spec_of(const std::string& model, const std::string& config_dir = "") {
  ModelSpec spec;
  spec.model = model;
  spec.config_dir = config_dir;
  return spec;
}

class ModelFiles {
 public:
  explicit ModelFiles(const ModelSpec& spec);
  explicit ModelFiles(const std::string& model) : ModelFiles(spec_of(model)) {}
  ~ModelFiles();

  const std::string& path() const { return path_; }  // the folder or the file
  bool is_single_file() const { return single_ != nullptr; }
  // One line on what a single file was taken for and where its configs came from; "" for a folder.
  const std::string& summary() const { return summary_; }

  Json component_config(const std::string& component) const;
  std::string component_config_path(const std::string& component) const;  // where it came from, for messages
  SafetensorsSet component_weights(const std::string& component, const std::string& variant = "") const;
  TokenizerFiles tokenizer_files() const;

  // The diffusers folder itself (lora fuse copies it); Error for a single file.
  const ModelFolder& folder() const;

 private:
  std::string path_, summary_, prediction_type_;
  std::optional<ModelFolder> folder_;         // the model folder, or --config's folder for a single file
  std::shared_ptr<const SingleFileCheckpoint> single_;
  const ModelFamily* family_ = nullptr;       // a single file without --config
  std::optional<ModelFolder> vae_folder_;     // --vae DIR
  std::string vae_file_;                      // --vae FILE
};

}  // namespace sdtune::io
