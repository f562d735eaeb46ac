// A training checkpoint as --resume_from_checkpoint reads it: state.json, random_states.safetensors
// and, when the input has a third part, optimizer.pt (else a valid AdamW archive written at start),
// loaded into an AdamW over a LoRA-sized parameter, then checked against a run of 8 examples.
#include <torch/torch.h>

#include "fuzz_support.h"
#include "lora/lora_file.h"
#include "train/checkpoint.h"

namespace {

using namespace sdtune;

struct Run {
  at::Tensor parameter = torch::zeros({4, 8}, torch::requires_grad());
  torch::optim::AdamW optimizer{{parameter}, torch::optim::AdamWOptions(1e-4)};
  std::string valid_optimizer_archive;
};

Run& run() {
  static Run r = [] {
    Run made;
    made.parameter.mutable_grad() = torch::ones({4, 8});
    made.optimizer.step();  // a state with moments, as a checkpoint after one step has
    torch::serialize::OutputArchive archive;
    made.optimizer.save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    made.valid_optimizer_archive = bytes.str();
    return made;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Run& r = run();
  static const bool folder_made = fuzz::make_scratch_dirs("checkpoint-1");
  (void)folder_made;
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 3);
  fuzz::write_scratch_file("checkpoint-1/state.json", parts[0]);
  fuzz::write_scratch_file("checkpoint-1/random_states.safetensors", parts[1]);
  fuzz::write_scratch_file("checkpoint-1/optimizer.pt", parts[2].empty() ? r.valid_optimizer_archive : parts[2]);
  fuzz::write_scratch_file("checkpoint-1/pytorch_lora_weights.safetensors", "");
  const std::string checkpoint = fuzz::scratch_dir() + "/checkpoint-1";
  fuzz::expect_success_or_error([&] {
    const train::CheckpointState state = train::load_checkpoint(checkpoint, r.optimizer);
    train::check_checkpoint_fits(state, 8, 8, checkpoint);
  });
  return 0;
}
