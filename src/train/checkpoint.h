// Training checkpoints: output_dir/checkpoint-N/ holds everything a run needs to continue exactly
// where it stopped (accelerate's save_state, in files other tools can read):
//   pytorch_lora_weights.safetensors  the LoRA so far (diffusers keys, alpha folded in: what every
//                                     tool and `sdtune generate` or `publish --checkpoint` load)
//   training_lora_weights.safetensors the same weights as trained (alpha kept apart), for an exact resume
//   optimizer.pt                      LibTorch's archive of the AdamW state
//   random_states.safetensors         the training generator's state and the epoch's shuffled order
//   state.json                        step, epoch, batch, seconds, loss scaler, and the run's arguments
// A checkpoint is written into a hidden temporary folder and renamed into place, so a kill at any
// moment leaves every earlier checkpoint whole.
#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace sdtune::lora {
struct LoraFile;
}

namespace sdtune::train {

struct TrainingPosition {
  int64_t step = 0;        // optimizer steps done
  int64_t epoch = 0;       // the epoch in progress
  int64_t next_batch = 0;  // its first batch not trained on yet
  double seconds = 0;      // training time so far
  double loss_scale = 0;   // fp16 loss scale (0: no scaler)
  int64_t scale_growth_tracker = 0;
};

struct CheckpointState {
  TrainingPosition position;
  at::Tensor generator_state;  // uint8, at::Generator::get_state()
  at::Tensor epoch_order;      // int64 shuffled example order of position.epoch
  nlohmann::json arguments;    // the run's options, for the record and for resume checks
  std::string lora_path;       // the LoRA weights to resume from (set by load_checkpoint)
};

// Writes output_dir/checkpoint-<step>/ (replacing one of the same step) and returns its path.
std::string save_checkpoint(const std::string& output_dir, const CheckpointState& state, const lora::LoraFile& weights,
                            const torch::optim::Optimizer& optimizer);

// Reads a checkpoint folder: fills `optimizer` and returns the rest, with the path of the LoRA weights
// as trained (checkpoints written before training_lora_weights.safetensors existed hold them unfolded
// in pytorch_lora_weights.safetensors).
CheckpointState load_checkpoint(const std::string& path, torch::optim::Optimizer& optimizer);

// A checkpoint's position and epoch order index the dataset: an Error naming the file unless they fit
// a run of `examples` examples in `batches_per_epoch` batches (a hostile or foreign state.json /
// random_states.safetensors must not send the loop outside its data).
void check_checkpoint_fits(const CheckpointState& state, int64_t examples, int64_t batches_per_epoch,
                           const std::string& path);

// The checkpoint-N folders of output_dir, oldest (smallest N) first.
std::vector<std::string> list_checkpoints(const std::string& output_dir);

// --resume_from_checkpoint: "latest" -> the newest checkpoint of output_dir ("" when there is none);
// otherwise a folder path, or a checkpoint name inside output_dir. A named one that does not exist is an Error.
std::string find_checkpoint(const std::string& output_dir, const std::string& spec);

// --checkpoints_total_limit: removes the oldest checkpoints until at most `limit` remain (0: no limit).
// Returns the removed paths.
std::vector<std::string> prune_checkpoints(const std::string& output_dir, int64_t limit);

}  // namespace sdtune::train
