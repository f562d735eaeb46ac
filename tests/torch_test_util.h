// Tensor comparison helpers for the LibTorch tests.
#pragma once
#include <torch/torch.h>

namespace sdtune::test {

// ||a - b|| / ||b|| (the project's numerics measure).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>();
  return diff / std::max(b.to(torch::kDouble).norm().item<double>(), 1e-30);
}

}  // namespace sdtune::test
