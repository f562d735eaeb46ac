// LoRA fine-tuning of the UNet as diffusers' examples/text_to_image/train_text_to_image_lora.py does
// it: frozen VAE and text encoder, noise + uniform timesteps, the DDPM forward process, MSE against
// epsilon or v (optionally min-SNR weighted), AdamW with gradient clipping and an lr schedule;
// checkpoints that resume bit-exactly, sample images, a loss log and plot.
#pragma once
#include <functional>
#include <string>

#include "io/model_files.h"
#include "lora/lora_adapters.h"
#include "pipeline/components.h"
#include "train/batches.h"
#include "train/dataset.h"
#include "train/lr_schedule.h"
#include "train/validation.h"

namespace sdtune::train {

struct TrainOptions {
  io::ModelSpec model;     // a diffusers folder, a single file, a Hub id; --vae
  std::string model_name;  // as the user named it (stored in the LoRA metadata)
  pipeline::LoadOptions load;
  std::string mixed_precision = "no";  // no, bf16 (CPU and CUDA), fp16 (CUDA, with loss scaling)
  bool gradient_checkpointing = false;
  std::string data_dir;
  DatasetOptions dataset;
  int64_t max_train_samples = 0;  // 0: all
  BatchOptions batches;           // resolution, crop, flip, interpolation, cache
  int64_t batch_size = 1;
  int64_t num_epochs = 100;
  int64_t max_train_steps = 0;  // 0: num_epochs decides
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 1e-4;
  bool scale_lr = false;
  LrSchedule lr{"constant", 500};  // kind, warmup (the script's 500), cycles, power; total steps and base lr are filled in
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_weight_decay = 1e-2, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  lora::LoraTrainingConfig lora;
  double noise_offset = 0;
  double snr_gamma = 0;          // 0: plain MSE
  std::string prediction_type;   // empty: the scheduler config's
  uint64_t seed = 0;
  std::string output_dir;
  bool save_kohya = false;  // also write pytorch_lora_weights_kohya.safetensors (A1111/ComfyUI keys)
  std::string trigger_word;  // recorded in the metadata; empty: detected from the captions when clear
  int64_t checkpointing_steps = 500;  // 0: none
  int64_t checkpoints_total_limit = 0;  // 0: keep all
  std::string resume_from_checkpoint;   // "", "latest", a checkpoint folder or name
  ValidationOptions validation;         // active when validation.prompt is set
  int64_t validation_epochs = 1;
};

struct StepReport {
  int64_t step, total_steps, epoch;
  double loss, lr;
};

struct TrainPlan {
  int64_t examples, epochs, batch_size, accumulation, total_steps;
  int64_t first_step;  // > 0 when resumed
};

struct TrainCallbacks {
  std::function<void(const TrainPlan&)> on_start;
  std::function<void(const StepReport&)> on_step;
  std::function<void(const std::string&)> on_message;  // checkpoints written, samples, resume
  // Polled after every optimizer step; true stops the run with a checkpoint of that step.
  std::function<bool()> stop_requested;
};

struct TrainResult {
  int64_t steps = 0;
  bool interrupted = false;
  std::string lora_path;        // the final LoRA (empty when interrupted)
  std::string last_checkpoint;  // the newest checkpoint written by this run
};

// Reads and checks the dataset (stopping with the report on errors), trains and writes
// output_dir/pytorch_lora_weights.safetensors (diffusers keys, training metadata), one JSON line per
// optimizer step to output_dir/logs/train.jsonl (step, epoch, loss, lr, seconds), logs/loss.svg,
// checkpoints and samples.
TrainResult train_lora(const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace sdtune::train
