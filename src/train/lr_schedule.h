// Learning-rate curves of diffusers' get_scheduler (transformers' schedules): the multiplier of the
// base learning rate at each optimizer step.
#pragma once
#include <cstdint>
#include <string>

namespace sdtune::train {

struct LrSchedule {
  std::string kind = "constant";  // constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  int64_t num_cycles = 1;  // cosine_with_restarts
  double power = 1.0;      // polynomial
  double lr_end = 1e-7;    // polynomial, absolute
  double base_lr = 1e-4;

  // Error naming --lr_scheduler for an unknown kind.
  void validate() const;
  double learning_rate(int64_t step) const;
};

}  // namespace sdtune::train
