#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sdtune::train {

void LrSchedule::validate() const {
  for (const char* k : {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"})
    if (kind == k) return;
  throw Error("--lr_scheduler", "unknown schedule \"" + kind +
                                    "\" (constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial)");
}

double LrSchedule::learning_rate(int64_t step) const {
  const double s = double(step), warmup = double(warmup_steps), total = double(std::max<int64_t>(total_steps, 1));
  if (kind == "constant") return base_lr;
  if (step < warmup_steps) return base_lr * s / std::max(1.0, warmup);
  const double progress = (s - warmup) / std::max(1.0, total - warmup);
  if (kind == "constant_with_warmup") return base_lr;
  if (kind == "linear") return base_lr * std::max(0.0, (total - s) / std::max(1.0, total - warmup));
  if (kind == "cosine") return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));
  if (kind == "cosine_with_restarts") {
    if (progress >= 1.0) return 0.0;
    return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::fmod(double(num_cycles) * progress, 1.0))));
  }
  // polynomial decay to lr_end
  if (s > total) return lr_end;
  const double remaining = 1 - (s - warmup) / std::max(1.0, total - warmup);
  return (base_lr - lr_end) * std::pow(remaining, power) + lr_end;
}

}  // namespace sdtune::train
