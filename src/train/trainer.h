// LoRA fine-tuning of the UNet as diffusers' examples/text_to_image/train_text_to_image_lora.py does
// it: frozen VAE and text encoder, noise + uniform timesteps, the DDPM forward process, MSE against
// epsilon or v (optionally min-SNR weighted), AdamW with gradient clipping and an lr schedule.
#pragma once
#include <c10/util/Optional.h>

#include <functional>
#include <string>

#include "lora/lora_adapters.h"
#include "pipeline/components.h"
#include "train/dataset.h"
#include "train/lr_schedule.h"
#include "train/resize.h"

namespace sdtune::train {

struct TrainOptions {
  std::string model_dir;  // a resolved diffusers folder
  std::string model_name;  // as the user named it (stored in the LoRA metadata)
  pipeline::LoadOptions load;
  std::string data_dir;
  DatasetOptions dataset;
  int64_t max_train_samples = 0;  // 0: all
  int64_t resolution = 512;
  bool center_crop = false;
  bool random_flip = false;
  Interpolation interpolation = Interpolation::Lanczos;
  int64_t batch_size = 1;
  int64_t num_epochs = 100;
  int64_t max_train_steps = 0;  // 0: num_epochs decides
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 1e-4;
  bool scale_lr = false;
  std::string lr_scheduler = "constant";
  int64_t lr_warmup_steps = 500;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_weight_decay = 1e-2, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  lora::LoraTrainingConfig lora;
  double noise_offset = 0;
  double snr_gamma = 0;          // 0: plain MSE
  std::string prediction_type;   // empty: the scheduler config's
  uint64_t seed = 0;
  std::string output_dir;
  bool save_kohya = false;  // also write pytorch_lora_weights_kohya.safetensors (A1111/ComfyUI keys)
};

struct StepReport {
  int64_t step, total_steps, epoch;
  double loss, lr;
};

struct TrainPlan {
  int64_t examples, epochs, batch_size, accumulation, total_steps;
};

struct TrainResult {
  int64_t steps = 0;
  std::string lora_path;
};

// Reads and checks the dataset (stopping with the report on errors), trains and writes
// output_dir/pytorch_lora_weights.safetensors (diffusers keys, training metadata) and one JSON line
// per optimizer step to output_dir/logs/train.jsonl (step, epoch, loss, lr, seconds).
TrainResult train_lora(const TrainOptions& options, const std::function<void(const TrainPlan&)>& on_start = nullptr,
                       const std::function<void(const StepReport&)>& on_step = nullptr);

// Image -> [3, resolution, resolution] in [-1, 1]: resize the shorter side, center or random crop,
// optional horizontal flip (torchvision's Resize, CenterCrop/RandomCrop, RandomHorizontalFlip).
at::Tensor train_transform(const io::RgbImage& image, int64_t resolution, Interpolation mode, bool center_crop, bool random_flip,
                           at::Generator& generator);

}  // namespace sdtune::train
