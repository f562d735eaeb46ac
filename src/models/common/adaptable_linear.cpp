#include "models/common/adaptable_linear.h"

#include <torch/torch.h>

namespace F = torch::nn::functional;

namespace sdtune::models {

AdaptableLinearImpl::AdaptableLinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  // torch.nn.Linear's default initialisation (uniform in +-1/sqrt(in)), for randomly made models.
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor AdaptableLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = F::linear(x, weight, bias);
  for (const auto& a : adapters) y = y + a.scale * F::linear(F::linear(x, a.down.to(x.scalar_type())), a.up.to(x.scalar_type()));
  return y;
}

}  // namespace sdtune::models
