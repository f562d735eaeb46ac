// Euler ancestral: an Euler step down to sigma_down, then fresh noise of std sigma_up, so that the
// result has the marginal of sigma_next.
#include <torch/torch.h>

#include "schedulers/registry.h"
#include "schedulers/sigma_scheduler.h"

namespace sdtune::schedulers {

namespace {

class EulerAncestralScheduler : public SigmaScheduler {
 public:
  EulerAncestralScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : SigmaScheduler(c, o, NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")) {}
  std::string name() const override { return "euler_a"; }
  void set_timesteps(int64_t steps) override { build_schedule(steps); }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample_in,
                  c10::optional<at::Generator> generator) override {
    const at::Tensor sample = sample_in.to(torch::kFloat);
    const double from = sigma(i), to = sigma(i + 1);
    const double up = std::sqrt(to * to * (from * from - to * to) / (from * from));
    const double down = std::sqrt(to * to - up * up);
    const at::Tensor derivative = (sample - predict_x0(model_output, sample, from)) / from;
    // Noise comes from the CPU generator, as diffusers' torch.Generator("cpu"), then moves.
    const at::Tensor noise =
        at::randn(model_output.sizes(), generator, model_output.options().device(torch::kCPU)).to(model_output.device());
    return (sample + derivative * (down - from) + noise * up).to(model_output.scalar_type());
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_ancestral(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<EulerAncestralScheduler>(c, o);
}

}  // namespace sdtune::schedulers
