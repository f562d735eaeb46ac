#include "dev/random_model.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "io/model_families.h"
#include "models/clip_text.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "pipeline/model_export.h"

namespace fs = std::filesystem;

namespace sdtune::dev {

namespace {

int64_t count_parameters(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

}  // namespace

RandomModelReport write_random_model(const RandomModelOptions& options) {
  const io::ModelFamily& family = io::model_family(options.preset, "--preset");
  std::error_code ec;
  if (fs::exists(options.output, ec)) throw Error(options.output, "already exists; choose a new folder or file");
  torch::manual_seed(options.seed);
  torch::NoGradGuard no_grad;
  models::ClipTextModel text_encoder(models::ClipTextConfig::from_json(family.text_encoder, "text_encoder"));
  models::AutoencoderKL vae(models::VaeConfig::from_json(family.vae, "vae"));
  models::UNet2DCondition unet(models::UNetConfig::from_json(family.unet, "unet"));

  pipeline::ExportedModel model;
  model.unet = unet.get(), model.text_encoder = text_encoder.get(), model.vae = vae.get();
  model.unet_config = family.unet, model.text_encoder_config = family.text_encoder;
  model.vae_config = family.vae, model.scheduler_config = family.scheduler;
  model.tokenizer = io::shipped_clip_tokenizer(family.pad_token);
  model.open_clip = family.open_clip;
  if (fs::path(options.output).extension() == ".safetensors") pipeline::write_single_file(model, options.output, options.dtype);
  else pipeline::write_diffusers_folder(model, options.output, options.dtype);
  return {count_parameters(*unet), count_parameters(*text_encoder), count_parameters(*vae)};
}

}  // namespace sdtune::dev
