// Writes a model with random weights in the real shapes of an SD 1.5 / SD 2.x family, as a diffusers
// folder or as one single-file checkpoint, so that every command can be run and timed at full size
// without downloading a model.
#pragma once
#include <c10/core/ScalarType.h>

#include <string>

namespace sdtune::dev {

struct RandomModelOptions {
  std::string preset;  // a family of io/model_families.h: sd2 (768-v), sd2-base, sd15, sd15-inpainting, sd2-inpainting
  at::ScalarType dtype = at::kHalf;
  uint64_t seed = 0;
  std::string output;  // a new folder, or a .safetensors file: one single-file checkpoint
};

struct RandomModelReport {
  int64_t unet_parameters = 0;
  int64_t text_encoder_parameters = 0;
  int64_t vae_parameters = 0;
};

// Throws Error for an unknown preset or an output that already exists.
RandomModelReport write_random_model(const RandomModelOptions& options);

}  // namespace sdtune::dev
