// A Linear layer that can carry low-rank side paths (LoRA, as PEFT applies it):
//   y = W x + b + sum_k scale_k * up_k(down_k(x)).
// The side paths are not registered as parameters of the model, so the model's state dict (and
// weight loading) stays the base model's; training collects them from `adapters`.
#pragma once
#include <torch/nn/module.h>

#include <vector>

namespace sdtune::models {

struct LowRankAdapter {
  torch::Tensor down;  // [rank, in]  (PEFT's lora_A)
  torch::Tensor up;    // [out, rank] (PEFT's lora_B)
  double scale;        // weight * alpha / rank
};

class AdaptableLinearImpl : public torch::nn::Module {
 public:
  AdaptableLinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias;
  std::vector<LowRankAdapter> adapters;
};
TORCH_MODULE(AdaptableLinear);

}  // namespace sdtune::models
