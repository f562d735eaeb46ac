#include "pipeline/components.h"

#include <torch/torch.h>

#include "io/model_folder.h"
#include "io/tensor_io.h"
#include "models/common/conv2d.h"

namespace sdtune::pipeline {

std::unique_ptr<text::ClipTokenizer> load_tokenizer(const io::ModelFolder& folder) {
  return std::make_unique<text::ClipTokenizer>(folder.component_dir("tokenizer"));
}

namespace {

// Builds a component from its config, fills it from its weight files and puts it in eval mode on
// the requested dtype and device.
template <typename Model, typename Config>
Model load_component(const io::ModelFolder& folder, const std::string& component, const std::string& prefix,
                     const LoadOptions& options) {
  const std::string config_path = folder.component_config_path(component);
  Model model(Config::from_json(io::read_json_file(config_path), config_path));
  model->to(options.dtype);
  io::load_module_weights(*model, io::SafetensorsSet(folder.weight_files(component, options.variant)), prefix);
  model->to(options.device);
  model->eval();
  return model;
}

}  // namespace

models::ClipTextModel load_text_encoder(const io::ModelFolder& folder, const LoadOptions& options) {
  return load_component<models::ClipTextModel, models::ClipTextConfig>(folder, "text_encoder", "text_model.", options);
}

models::UNet2DCondition load_unet(const io::ModelFolder& folder, const LoadOptions& options) {
  auto unet = load_component<models::UNet2DCondition, models::UNetConfig>(folder, "unet", "", options);
  if (options.channels_last) models::use_channels_last(*unet);
  return unet;
}

models::AutoencoderKL load_vae(const io::ModelFolder& folder, const LoadOptions& options) {
  auto vae = load_component<models::AutoencoderKL, models::VaeConfig>(folder, "vae", "", options);
  if (options.channels_last) models::use_channels_last(*vae);
  return vae;
}

TextComponents load_text_components(const io::ModelFolder& folder, const LoadOptions& options) {
  return {load_tokenizer(folder), load_text_encoder(folder, options)};
}

}  // namespace sdtune::pipeline

namespace sdtune::pipeline {

StableDiffusion load_stable_diffusion(const io::ModelFolder& folder, const LoadOptions& options) {
  StableDiffusion model;
  // The UNet first: while a component loads, its file's pages are resident next to the converted
  // weights, so loading the biggest one while little else is in memory keeps the peak low
  // (SD 2 from fp16 files to fp32: 6.5 GB with the text encoder first).
  model.unet = load_unet(folder, options);
  model.tokenizer = load_tokenizer(folder);
  model.text_encoder = load_text_encoder(folder, options);
  model.vae = load_vae(folder, options);
  // diffusers keeps such a VAE in fp32 under fp16 (force_upcast): SD 2's decoder overflows in fp16.
  if (options.dtype == at::kHalf && model.vae->config().force_upcast) model.vae->to(at::kFloat);
  return model;
}

}  // namespace sdtune::pipeline
