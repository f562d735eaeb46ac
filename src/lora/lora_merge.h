// Merging LoRAs into model weights: W += weight * alpha/rank * up @ down for every target module,
// with the changed weights kept so that unmerge() restores them bit for bit.
#pragma once
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "lora/lora_file.h"

namespace sdtune::lora {

struct MergeReport {
  int64_t unet_modules = 0;
  int64_t text_encoder_modules = 0;
  std::vector<std::string> skipped;  // keys that matched nothing (only with allow_partial)
};

class LoraMerger {
 public:
  LoraMerger(torch::nn::Module& unet, torch::nn::Module& text_encoder);

  // Adds `lora` at `weight`. Every module must exist with fitting shapes, else an Error names the key
  // ("made for another base model?") - unless `allow_partial`, which skips and reports them.
  MergeReport merge(const LoraFile& lora, double weight, bool allow_partial = false);

  // Puts back the weights as they were before the first merge.
  void unmerge();

 private:
  struct Target {
    at::Tensor weight;  // the model's parameter (changed in place)
    at::Tensor original;
  };
  // The weight parameter of `module` in a component, or undefined.
  at::Tensor find_weight(Component component, const LoraModule& m) const;

  std::map<std::string, at::Tensor> unet_weights_, text_weights_;  // "<module>" -> weight
  std::map<std::string, std::string> unet_flat_, text_flat_;       // kohya flat name -> module
  std::map<const void*, Target> touched_;
};

}  // namespace sdtune::lora
