// What a training run records about itself: the arguments (in a checkpoint's state.json, and checked
// on resume) and the metadata of the LoRA file: sdtune_* keys plus the kohya ss_* keys that A1111,
// ComfyUI and civitai read (network dim/alpha, base model version, resolution, steps, tag frequency).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/text_to_image.h"
#include "train/dataset.h"

namespace sdtune::train {

struct TrainOptions;

struct TrainingRecord {
  nlohmann::json arguments;
  std::map<std::string, std::string> metadata;  // without the step count and time
};

TrainingRecord describe_training(const TrainOptions& options, const Dataset& dataset, const pipeline::StableDiffusion& model,
                                 const std::string& prediction_type);

// The LoRA file's __metadata__ after `steps` steps in `seconds`.
std::map<std::string, std::string> lora_metadata(const TrainingRecord& record, int64_t steps, double seconds);

// A token every caption contains that is clearly made up ("(lora-misato-token)", "<sks>"): one with a
// character other than a letter. Empty when there is none or more than one.
std::string detect_trigger_word(const Dataset& dataset);

// FNV-1a 64 over every example's file name, image bytes and captions, as 16 hex digits.
std::string dataset_hash(const Dataset& dataset);

}  // namespace sdtune::train
