// Writes a diffusers pipeline folder with random weights in the real shapes of SD 1.5 / SD 2.x, so
// that every command can be run and timed at full size without downloading a model.
#pragma once
#include <c10/core/ScalarType.h>

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace sdtune::dev {

struct RandomModelOptions {
  std::string preset;  // "sd2" (768-v), "sd2-base" (512, epsilon) or "sd15"
  at::ScalarType dtype = at::kHalf;
  uint64_t seed = 0;
  std::string output;
};

struct RandomModelReport {
  int64_t unet_parameters = 0;
  int64_t text_encoder_parameters = 0;
  int64_t vae_parameters = 0;
};

// The config.json (scheduler: scheduler_config.json) that a preset writes for `component`.
nlohmann::json preset_config(const std::string& preset, const std::string& component);

// A CLIP-style tokenizer folder with the real vocabulary size (49408) and the given pad token.
void write_random_tokenizer(const std::string& folder, const std::string& pad_token);

// Throws Error for an unknown preset or an output folder that already holds a model.
RandomModelReport write_random_model(const RandomModelOptions& options);

}  // namespace sdtune::dev
