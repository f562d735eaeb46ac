// A Linear layer that can carry low-rank side paths (LoRA, as PEFT applies it):
//   y = W x + b + sum_k scale_k * up_k(down_k(x)).
// The side paths are not registered as parameters of the model, so the model's state dict (and
// weight loading) stays the base model's; training collects them from `adapters`.
#pragma once
#include <vector>

#include "models/common/linear.h"

namespace sdtune::models {

struct LowRankAdapter {
  torch::Tensor down;  // [rank, in]  (PEFT's lora_A)
  torch::Tensor up;    // [out, rank] (PEFT's lora_B)
  double scale;        // weight * alpha / rank
};

class AdaptableLinearImpl : public LinearImpl {
 public:
  using LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x) override;

  std::vector<LowRankAdapter> adapters;
};
TORCH_MODULE(AdaptableLinear);

}  // namespace sdtune::models
