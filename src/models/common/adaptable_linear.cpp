#include "models/common/adaptable_linear.h"

#include <torch/torch.h>

namespace F = torch::nn::functional;

namespace sdtune::models {

torch::Tensor AdaptableLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = linear(x, weight, bias);
  for (const auto& a : adapters) y = y + a.scale * F::linear(F::linear(x, a.down.to(x.scalar_type())), a.up.to(x.scalar_type()));
  return y;
}

}  // namespace sdtune::models
