// Loading the components of a model (a diffusers folder or a single file), each built from its own config.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <memory>
#include <string>

#include "models/clip_text.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "pipeline/text_to_image.h"
#include "text/clip_tokenizer.h"

namespace sdtune::io {
class ModelFiles;
}

namespace sdtune::pipeline {

struct LoadOptions {
  std::string variant;  // "" or e.g. "fp16" (file name variant)
  at::ScalarType dtype = at::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  // UNet and VAE convolution weights stored NHWC (models::use_channels_last): the CLI's choice on CUDA.
  bool channels_last = false;
};

struct TextComponents {
  std::unique_ptr<text::ClipTokenizer> tokenizer;
  models::ClipTextModel encoder{nullptr};
};

std::unique_ptr<text::ClipTokenizer> load_tokenizer(const io::ModelFiles& files);
models::ClipTextModel load_text_encoder(const io::ModelFiles& files, const LoadOptions& options);
TextComponents load_text_components(const io::ModelFiles& files, const LoadOptions& options);
models::UNet2DCondition load_unet(const io::ModelFiles& files, const LoadOptions& options);
models::AutoencoderKL load_vae(const io::ModelFiles& files, const LoadOptions& options);
// Every component generation needs (tokenizer, text encoder, UNet, VAE).
StableDiffusion load_stable_diffusion(const io::ModelFiles& files, const LoadOptions& options);

}  // namespace sdtune::pipeline
