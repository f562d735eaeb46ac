#include "models/common/linear.h"

#include <torch/torch.h>

#include <cmath>

#include "kernels/onednn_linear.h"

namespace sdtune::models {

torch::Tensor linear(const torch::Tensor &x, const torch::Tensor &weight, const torch::Tensor &bias) {
  // Only inference mode guarantees no gradient is wanted: training's no-grad
  // passes (gradient checkpointing) keep aten so their recomputation matches.
  if (c10::InferenceMode::is_enabled()) {
    torch::Tensor y = kernels::onednn_linear(x, weight, bias);
    if (y.defined()) return y;
  }
  return torch::nn::functional::linear(x, weight, bias);
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  // torch.nn.Linear's default initialisation (uniform in +-1/sqrt(in)), for
  // randomly made models.
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor &x) { return linear(x, weight, bias); }

}  // namespace sdtune::models
