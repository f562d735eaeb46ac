#include "io/model_files.h"

#include <filesystem>

#include "core/error.h"
#include "core/printable.h"
#include "io/model_families.h"
#include "io/model_source.h"
#include "io/single_file_checkpoint.h"

namespace fs = std::filesystem;

namespace sdtune::io {

namespace {

bool is_safetensors_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && fs::path(path).extension() == ".safetensors";
}

HubOptions hub_options(const ModelSpec& spec, std::vector<std::string> components, bool weights = true) {
  return {spec.offline, spec.variant, std::move(components), weights};
}

// A VAE folder: its own config.json and weights (component "" of ModelFolder), or a pipeline folder's vae/.
ModelFolder vae_folder(const ModelSpec& spec) {
  const std::string dir = resolve_model_dir(spec.vae, "main", hub_options(spec, {""}));
  std::error_code ec;
  if (fs::is_directory(fs::path(dir) / "vae", ec)) return ModelFolder((fs::path(dir) / "vae").string());
  return ModelFolder(dir);
}

}  // namespace

ModelFiles::~ModelFiles() = default;

ModelFiles::ModelFiles(const ModelSpec& spec) : prediction_type_(spec.prediction_type) {
  if (!spec.prediction_type.empty() && spec.prediction_type != "epsilon" && spec.prediction_type != "v_prediction")
    throw Error("--prediction_type", "must be epsilon or v_prediction, got " + in_quotes(spec.prediction_type));
  if (is_safetensors_file(spec.model)) {
    path_ = spec.model;
    single_ = std::make_shared<const SingleFileCheckpoint>(spec.model);
    if (!spec.config_dir.empty()) {
      folder_.emplace(resolve_model_dir(spec.config_dir, spec.revision, hub_options(spec, pipeline_components(), false)));
      summary_ = spec.model + ": single-file checkpoint, configs and tokenizer from " + spec.config_dir + " (--config)";
    } else {
      const auto guess = single_->guess_family(spec.prediction_type);
      if (guess.family.empty())
        throw Error(spec.model, "single-file checkpoint of no family sdtune ships configs for (" + guess.reason +
                                    "); pass --config DIR, a diffusers folder of the same architecture");
      family_ = &model_family(guess.family, spec.model);
      summary_ = spec.model + ": single-file " + family_->description + " checkpoint (" + guess.reason + "); configs of " +
                 family_->hub_repo + " and the CLIP tokenizer shipped with sdtune";
    }
  } else {
    if (!spec.config_dir.empty()) throw Error("--config", "applies to a single-file checkpoint; " + spec.model + " is not one");
    path_ = resolve_model_dir(spec.model, spec.revision, hub_options(spec, spec.components));
    folder_.emplace(path_);
  }
  if (spec.vae.empty()) return;
  if (is_safetensors_file(spec.vae)) vae_file_ = spec.vae;
  else vae_folder_.emplace(vae_folder(spec));
  summary_ += std::string(summary_.empty() ? "" : "; ") + "VAE from " + spec.vae + " (--vae)";
}

const ModelFolder& ModelFiles::folder() const {
  if (single_) throw Error(path_, "is a single-file checkpoint, not a diffusers folder");
  return *folder_;
}

Json ModelFiles::component_config(const std::string& component) const {
  Json config;
  if (component == "vae" && vae_folder_) config = vae_folder_->component_config("");
  else if (family_) {
    config = component == "unet" ? family_->unet : component == "vae" ? family_->vae : component == "text_encoder" ? family_->text_encoder
           : component == "scheduler" ? family_->scheduler : Json();
    if (config.is_null()) throw Error(path_, "a single-file checkpoint has no " + component + " component");
  } else {
    config = folder_->component_config(component);
  }
  if (component == "scheduler" && !prediction_type_.empty() && config.is_object()) config["prediction_type"] = prediction_type_;
  return config;
}

std::string ModelFiles::component_config_path(const std::string& component) const {
  if (component == "vae" && vae_folder_) return vae_folder_->component_config_path("");
  if (family_) return path_ + " (" + family_->name + " " + component + " config)";
  return folder_->component_config_path(component);
}

SafetensorsSet ModelFiles::component_weights(const std::string& component, const std::string& variant) const {
  if (component == "vae" && vae_folder_) return SafetensorsSet(vae_folder_->weight_files("", variant));
  if (component == "vae" && !vae_file_.empty()) return vae_file_weights(vae_file_, component_config("vae"), component_config_path("vae"));
  if (!single_) return SafetensorsSet(folder_->weight_files(component, variant));
  if (!variant.empty()) throw Error("--variant", "names weight files of a diffusers folder; " + path_ + " is a single file");
  if (component == "unet") return single_->unet(component_config("unet"), component_config_path("unet"));
  if (component == "vae") return single_->vae(component_config("vae"), component_config_path("vae"));
  if (component == "text_encoder") return single_->text_encoder();
  throw Error(path_, "a single-file checkpoint has no " + component + " weights");
}

TokenizerFiles ModelFiles::tokenizer_files() const {
  if (family_) return shipped_clip_tokenizer(family_->pad_token);
  return read_tokenizer_folder(folder_->component_dir("tokenizer"));
}

}  // namespace sdtune::io
