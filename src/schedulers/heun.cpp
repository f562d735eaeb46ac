// Heun (Karras et al. 2022, Algorithm 1): every step but the last is an Euler predictor at sigma_i
// followed by a corrector evaluated at sigma_{i+1}; the schedule repeats each inner timestep.
#include <torch/torch.h>

#include "schedulers/registry.h"
#include "schedulers/sigma_scheduler.h"

namespace sdtune::schedulers {

namespace {

class HeunScheduler : public SigmaScheduler {
 public:
  HeunScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : SigmaScheduler(c, o, NoiseSchedule::from_config(c, 0.00085, 0.012, "linear")),
        clip_sample_(c.flag("clip_sample", false)),
        clip_range_(c.number("clip_sample_range", 1.0)) {}
  std::string name() const override { return "heun"; }

  void set_timesteps(int64_t steps) override {
    build_schedule(steps);
    // sigmas: s0, s1, s1, s2, s2, ..., 0; timesteps: t0, t1, t1, t2, t2, ...
    std::vector<double> sigmas{sigma_values_.front()};
    for (size_t k = 1; k + 1 < sigma_values_.size(); ++k) sigmas.insert(sigmas.end(), 2, sigma_values_[k]);
    sigmas.push_back(sigma_values_.back());
    sigma_values_ = sigmas;
    sigmas_ = torch::tensor(std::vector<float>(sigmas.begin(), sigmas.end()));
    timesteps_ = torch::cat({timesteps_.slice(0, 0, 1), timesteps_.slice(0, 1).repeat_interleave(2)});
    first_order_ = true;
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample,
                  c10::optional<at::Generator>) override {
    const double s = first_order_ ? sigma(i) : sigma(i - 1);
    const double next = first_order_ ? sigma(i + 1) : sigma(i);
    at::Tensor x0 = predict_x0(model_output, sample, first_order_ ? s : next);
    if (clip_sample_) x0 = x0.clamp(-clip_range_, clip_range_);
    at::Tensor result;
    if (first_order_) {  // predictor: remember the slope and where we started
      prev_derivative_ = (sample - x0) / s;
      dt_ = next - s;
      start_ = sample;
      result = sample + prev_derivative_ * dt_;
    } else {  // corrector: average the two slopes from the remembered start
      const at::Tensor derivative = ((sample - x0) / next + prev_derivative_) / 2;
      result = start_ + derivative * dt_;
      prev_derivative_ = start_ = at::Tensor();
    }
    first_order_ = !first_order_;
    return result;
  }

 private:
  bool clip_sample_;
  double clip_range_;
  bool first_order_ = true;
  at::Tensor prev_derivative_, start_;
  double dt_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_heun(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<HeunScheduler>(c, o);
}

}  // namespace sdtune::schedulers
