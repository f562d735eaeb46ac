#include "pipeline/components.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "models/common/conv2d.h"

namespace sdtune::pipeline {

std::unique_ptr<text::ClipTokenizer> load_tokenizer(const io::ModelFiles& files) {
  return std::make_unique<text::ClipTokenizer>(files.tokenizer_files());
}

namespace {

// The config's sizes against the weight files' headers, before the model is built: a config that
// describes a far larger model than its weights fails here instead of allocating that model.
void check_config_fits_weights(const models::WeightSignature& signature, const io::SafetensorsSet& weights, const std::string& prefix,
                               const std::string& config_path) {
  for (const auto& expected : signature) {
    const auto found = weights.find(prefix + expected.name);
    const std::string problem = "describes a model with tensor " + weights.shown_name(prefix + expected.name) + " of shape " + shape_text(expected.shape);
    if (!found.entry) throw Error(config_path, problem + ", which " + weights.describe() + " does not have (config and weights do not belong together)");
    bool fits = found.entry->shape.size() == expected.shape.size();
    for (size_t d = 0; fits && d < expected.shape.size(); ++d) fits = expected.shape[d] == models::kAnySize || expected.shape[d] == found.entry->shape[d];
    if (!fits)
      throw Error(config_path, problem + ", but " + found.file->path() + " has " + shape_text(found.entry->shape) +
                                   " (config and weights do not belong together)");
  }
}

// Builds a component from its config, fills it from its weight files and puts it in eval mode on
// the requested dtype and device.
template <typename Model, typename Config>
Model load_component(const io::ModelFiles& files, const std::string& component, const std::string& prefix,
                     const LoadOptions& options) {
  const std::string config_path = files.component_config_path(component);
  const Config config = Config::from_json(files.component_config(component), config_path);
  const io::SafetensorsSet weights = files.component_weights(component, options.variant);
  check_config_fits_weights(config.weight_signature(), weights, prefix, config_path);
  Model model(config);
  model->to(options.dtype);
  io::load_module_weights(*model, weights, prefix);
  model->to(options.device);
  model->eval();
  return model;
}

}  // namespace

models::ClipTextModel load_text_encoder(const io::ModelFiles& files, const LoadOptions& options) {
  return load_component<models::ClipTextModel, models::ClipTextConfig>(files, "text_encoder", "text_model.", options);
}

models::UNet2DCondition load_unet(const io::ModelFiles& files, const LoadOptions& options) {
  auto unet = load_component<models::UNet2DCondition, models::UNetConfig>(files, "unet", "", options);
  if (options.channels_last) models::use_channels_last(*unet);
  return unet;
}

models::AutoencoderKL load_vae(const io::ModelFiles& files, const LoadOptions& options) {
  auto vae = load_component<models::AutoencoderKL, models::VaeConfig>(files, "vae", "", options);
  if (options.channels_last) models::use_channels_last(*vae);
  return vae;
}

TextComponents load_text_components(const io::ModelFiles& files, const LoadOptions& options) {
  return {load_tokenizer(files), load_text_encoder(files, options)};
}

}  // namespace sdtune::pipeline

namespace sdtune::pipeline {

StableDiffusion load_stable_diffusion(const io::ModelFiles& files, const LoadOptions& options) {
  StableDiffusion model;
  // The UNet first: while a component loads, its file's pages are resident next to the converted
  // weights, so loading the biggest one while little else is in memory keeps the peak low
  // (SD 2 from fp16 files to fp32: 6.5 GB with the text encoder first).
  model.unet = load_unet(files, options);
  model.tokenizer = load_tokenizer(files);
  model.text_encoder = load_text_encoder(files, options);
  model.vae = load_vae(files, options);
  // diffusers keeps such a VAE in fp32 under fp16 (force_upcast): SD 2's decoder overflows in fp16.
  if (options.dtype == at::kHalf && model.vae->config().force_upcast) model.vae->to(at::kFloat);
  return model;
}

}  // namespace sdtune::pipeline
