// Euler (Karras et al. 2022, Algorithm 2 without churn): x <- x + (x - x0)/sigma * (sigma_next - sigma).
#include <torch/torch.h>

#include "core/error.h"
#include "schedulers/registry.h"
#include "schedulers/sigma_scheduler.h"

namespace sdtune::schedulers {

namespace {

class EulerScheduler : public SigmaScheduler {
 public:
  EulerScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : SigmaScheduler(c, o, NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")) {
    if (c.text("final_sigmas_type", "zero") != "zero") throw Error(c.where(), "unsupported final_sigmas_type");
  }
  std::string name() const override { return "euler"; }
  void set_timesteps(int64_t steps) override { build_schedule(steps); }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample_in,
                  c10::optional<at::Generator>) override {
    const at::Tensor sample = sample_in.to(torch::kFloat);
    const double s = sigma(i);
    const at::Tensor derivative = (sample - predict_x0(model_output, sample, s)) / s;
    return (sample + derivative * (sigma(i + 1) - s)).to(model_output.scalar_type());
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_euler(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<EulerScheduler>(c, o);
}

}  // namespace sdtune::schedulers
