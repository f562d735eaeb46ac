// A Linear layer with torch.nn.Linear's parameter names (weight [out, in],
// bias [out]) and initialisation. When the weight takes no gradient (inference,
// the frozen base model in LoRA training) its products on the CPU run through
// oneDNN directly (kernels/onednn_linear.h); otherwise it is aten::linear.
#pragma once
#include <torch/nn/module.h>

namespace sdtune::models {

// x @ weight^T + bias, by the route described above (bias may be undefined).
torch::Tensor linear(const torch::Tensor &x, const torch::Tensor &weight, const torch::Tensor &bias);

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  virtual torch::Tensor forward(const torch::Tensor &x);

  torch::Tensor weight, bias;
};
TORCH_MODULE(Linear);

}  // namespace sdtune::models
