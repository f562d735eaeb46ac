// DDIM (Song et al. 2021): predict x0 and the noise, then move to the previous timestep's noise
// level; eta > 0 adds fresh noise (eta = 1 is DDPM-like).
#include <torch/torch.h>

#include "core/error.h"
#include "schedulers/registry.h"

namespace sdtune::schedulers {

namespace {

class DdimScheduler : public Scheduler {
 public:
  DdimScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : schedule_(NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")),
        prediction_type_(c.text("prediction_type", "epsilon")),
        spacing_(c.text("timestep_spacing", "leading")),
        steps_offset_(c.integer("steps_offset", 0)),
        clip_sample_(c.flag("clip_sample", true)),
        clip_range_(c.number("clip_sample_range", 1.0)),
        final_alpha_cumprod_(c.flag("set_alpha_to_one", true) ? 1.0 : schedule_.alpha_cumprod(0)),
        eta_(o.eta) {
    c.check_choice("prediction_type", prediction_type_, {"epsilon", "v_prediction", "sample"});
    if (c.flag("thresholding", false)) throw Error(c.where(), "unsupported thresholding (dynamic thresholding is for pixel-space models)");
    if (eta_ < 0) throw Error("--eta", "must be >= 0");
  }
  std::string name() const override { return "ddim"; }

  void set_timesteps(int64_t steps) override {
    steps_ = steps;
    std::vector<int64_t> t;
    for (double v : spaced_timesteps(spacing_, schedule_.num_train_timesteps, steps, steps_offset_, true)) t.push_back(int64_t(v));
    timesteps_ = torch::tensor(t);
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample,
                  c10::optional<at::Generator> generator) override {
    const int64_t t = timesteps_[i].item<int64_t>();
    const int64_t prev_t = t - schedule_.num_train_timesteps / steps_;
    const double alpha = schedule_.alpha_cumprod(t);
    const double alpha_prev = prev_t >= 0 ? schedule_.alpha_cumprod(prev_t) : final_alpha_cumprod_;
    const double beta = 1 - alpha;
    at::Tensor x0, eps;
    if (prediction_type_ == "epsilon") {
      x0 = (sample - std::sqrt(beta) * model_output) / std::sqrt(alpha);
      eps = model_output;
    } else if (prediction_type_ == "sample") {
      x0 = model_output;
      eps = (sample - std::sqrt(alpha) * x0) / std::sqrt(beta);
    } else {
      x0 = std::sqrt(alpha) * sample - std::sqrt(beta) * model_output;
      eps = std::sqrt(alpha) * model_output + std::sqrt(beta) * sample;
    }
    if (clip_sample_) x0 = x0.clamp(-clip_range_, clip_range_);
    const double variance = (1 - alpha_prev) / beta * (1 - alpha / alpha_prev);
    const double std_dev = eta_ * std::sqrt(variance);
    at::Tensor prev = std::sqrt(alpha_prev) * x0 + std::sqrt(1 - alpha_prev - std_dev * std_dev) * eps;
    if (eta_ > 0) {
      const at::Tensor noise =
          at::randn(model_output.sizes(), generator, model_output.options().device(torch::kCPU)).to(model_output.device());
      prev = prev + std_dev * noise;
    }
    return prev;
  }

 private:
  NoiseSchedule schedule_;
  std::string prediction_type_, spacing_;
  int64_t steps_offset_;
  bool clip_sample_;
  double clip_range_;
  double final_alpha_cumprod_;
  double eta_;
  int64_t steps_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_ddim(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<DdimScheduler>(c, o);
}

}  // namespace sdtune::schedulers
