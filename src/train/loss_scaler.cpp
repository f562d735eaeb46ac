#include "train/loss_scaler.h"

#include <torch/torch.h>

namespace sdtune::train {

bool LossScaler::unscale(const std::vector<at::Tensor>& parameters) const {
  bool finite = true;
  torch::NoGradGuard no_grad;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    p.mutable_grad().div_(scale_);
    finite = finite && p.grad().isfinite().all().item<bool>();
  }
  return finite;
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= 0.5;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == growth_interval_) {
    scale_ *= 2.0;
    growth_tracker_ = 0;
  }
}

}  // namespace sdtune::train
