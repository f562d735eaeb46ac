// Sample images during training (the script's --validation_prompt): the model with its LoRA side
// paths as they are now, the model's own scheduler, a fixed seed, so images of different steps
// differ only by what the LoRA learned.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/text_to_image.h"

namespace sdtune::train {

struct ValidationOptions {
  std::string prompt;
  std::string negative_prompt;
  int64_t num_images = 4;
  int64_t steps = 30;  // the script's log_validation uses 30 inference steps
  double guidance_scale = 7.5;
  int64_t size = 512;  // the training resolution
  uint64_t seed = 0;
  std::string model_name;
  std::string lora_name;  // for the PNG parameters (a <lora:name:1> tag after the prompt)
};

// Writes output_dir/samples/step-<step>-<k>.png (A1111 parameters chunk) and appends one line per
// image to output_dir/samples/samples.jsonl. Returns the image paths.
std::vector<std::string> write_validation_images(pipeline::StableDiffusion& model, const nlohmann::json& scheduler_config,
                                                 const ValidationOptions& options, int64_t step, int64_t epoch,
                                                 const std::string& output_dir);

}  // namespace sdtune::train
