// LoRA side paths attached to a model's adaptable projections, for training (and for LoRAs that
// must change between runs): PEFT's layout, A = down [rank, in], B = up [out, rank], scale alpha/rank.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "lora/lora_file.h"
#include "models/common/adaptable_linear.h"

namespace sdtune::lora {

struct LoraTrainingConfig {
  int64_t rank = 4;
  double alpha = 4;  // kohya users set it; diffusers' script uses alpha = rank
  std::vector<std::string> targets{"to_k", "to_q", "to_v", "to_out.0"};
};

class LoraAdapters {
 public:
  // Fresh side paths on every adaptable projection whose path ends with a target: A ~ N(0, 1/rank)
  // drawn from `generator` (PEFT's "gaussian" init), B = 0, so the model starts unchanged.
  static LoraAdapters attach_new(torch::nn::Module& model, Component component, const LoraTrainingConfig& config,
                                 at::Generator generator);
  // Side paths holding a LoRA file's weights (strict: every module must be adaptable and fit).
  static LoraAdapters attach_from(torch::nn::Module& model, const LoraFile& file, Component component, double weight = 1.0);

  // The trainable tensors, with PEFT names ("<module>.lora_A.weight", "<module>.lora_B.weight").
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  std::vector<torch::Tensor> parameters() const;
  // Overwrites every side path with the weights of the same module in `file` (resuming a run).
  // The file must hold exactly these modules with these shapes.
  void load_weights(const LoraFile& file);
  // The current weights as a LoRA file (copies), e.g. for saving.
  LoraFile to_file(const std::string& path) const;
  size_t size() const { return slots_.size(); }
  // Removes the side paths from the model.
  void detach();

 private:
  struct Slot {
    std::string module;
    std::shared_ptr<models::AdaptableLinearImpl> layer;
    size_t index;  // in layer->adapters
    double alpha;
  };
  Component component_ = Component::UNet;
  std::vector<Slot> slots_;
};

}  // namespace sdtune::lora
