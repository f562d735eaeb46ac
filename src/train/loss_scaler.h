// Dynamic loss scaling for fp16 training (torch.cuda.amp.GradScaler's rule): the loss is multiplied
// by a large scale so small fp16 gradients do not flush to zero; a step whose gradients overflowed is
// skipped and the scale halved; after `growth_interval` good steps in a row the scale doubles.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace sdtune::train {

class LossScaler {
 public:
  explicit LossScaler(double scale = 65536.0, int64_t growth_interval = 2000) : scale_(scale), growth_interval_(growth_interval) {}

  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  void restore(double scale, int64_t growth_tracker) { scale_ = scale, growth_tracker_ = growth_tracker; }

  // Divides the gradients by the scale. False when any is inf or NaN: skip this optimizer step.
  bool unscale(const std::vector<at::Tensor>& parameters) const;
  // After each optimizer step (taken or skipped).
  void update(bool finite);

 private:
  double scale_;
  int64_t growth_interval_;
  int64_t growth_tracker_ = 0;
};

}  // namespace sdtune::train
