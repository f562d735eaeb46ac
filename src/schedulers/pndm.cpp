// PNDM (Liu et al. 2022): a Runge-Kutta warm-up (four evaluations per step, unless skip_prk_steps)
// followed by linear multistep (PLMS) updates that reuse up to four past noise predictions.
#include <torch/torch.h>

#include <deque>

#include "core/error.h"
#include "schedulers/registry.h"

namespace sdtune::schedulers {

namespace {

class PndmScheduler : public Scheduler {
 public:
  PndmScheduler(const ConfigReader& c, const SchedulerOptions&)
      : schedule_(NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")),
        prediction_type_(c.text("prediction_type", "epsilon")),
        spacing_(c.text("timestep_spacing", "leading")),
        steps_offset_(c.integer("steps_offset", 0)),
        skip_prk_steps_(c.flag("skip_prk_steps", false)),
        final_alpha_cumprod_(c.flag("set_alpha_to_one", false) ? 1.0 : schedule_.alpha_cumprod(0)) {
    c.check_choice("prediction_type", prediction_type_, {"epsilon", "v_prediction"});
  }
  std::string name() const override { return "pndm"; }

  void set_timesteps(int64_t steps) override {
    steps_ = steps;
    std::vector<double> spaced = spaced_timesteps(spacing_, schedule_.num_train_timesteps, steps, steps_offset_, true);
    const std::vector<int64_t> ascending(spaced.rbegin(), spaced.rend());
    std::vector<int64_t> t;
    if (skip_prk_steps_) {  // t_{n-1}, t_{n-2}, t_{n-2}, t_{n-3}, ..., t_0: the second step repeats
      prk_steps_ = 0;
      t.push_back(ascending.back());
      for (auto it = ascending.rbegin() + 1; it != ascending.rend(); ++it) {
        t.push_back(*it);
        if (it == ascending.rbegin() + 1) t.push_back(*it);
      }
    } else {
      if (steps < 4) throw Error("--num_inference_steps", "PNDM with Runge-Kutta warm-up needs at least 4 steps");
      // Runge-Kutta on the last four (highest) timesteps and their half-way points.
      const int64_t half = schedule_.num_train_timesteps / steps / 2;
      std::vector<int64_t> prk;
      for (size_t k = ascending.size() - 4; k < ascending.size(); ++k) prk.push_back(ascending[k]), prk.push_back(ascending[k] + half);
      prk.pop_back();
      std::vector<int64_t> doubled;
      for (int64_t v : prk) doubled.push_back(v), doubled.push_back(v);
      t.assign(doubled.rbegin() + 1, doubled.rend() - 1);
      prk_steps_ = int64_t(t.size());
      for (auto it = ascending.rbegin() + 3; it != ascending.rend(); ++it) t.push_back(*it);
    }
    timesteps_ = torch::tensor(t);
    ets_.clear();
    counter_ = 0;
    cur_model_output_ = cur_sample_ = at::Tensor();
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample,
                  c10::optional<at::Generator>) override {
    const int64_t t = timesteps_[i].item<int64_t>();
    return counter_ < prk_steps_ ? step_prk(model_output, t, sample) : step_plms(model_output, t, sample);
  }

 private:
  at::Tensor step_prk(const at::Tensor& model_output, int64_t t, const at::Tensor& sample) {
    const int64_t diff_to_prev = counter_ % 2 ? 0 : schedule_.num_train_timesteps / steps_ / 2;
    const int64_t prev_t = t - diff_to_prev;
    const int64_t base_t = timesteps_[counter_ / 4 * 4].item<int64_t>();
    at::Tensor output = model_output;
    switch (counter_ % 4) {
      case 0:
        cur_model_output_ = model_output / 6;
        ets_.push_back(model_output);
        cur_sample_ = sample;
        break;
      case 1:
      case 2:
        cur_model_output_ = cur_model_output_ + model_output / 3;
        break;
      default:
        output = cur_model_output_ + model_output / 6;
        cur_model_output_ = at::Tensor();
    }
    ++counter_;
    return prev_sample(cur_sample_.defined() ? cur_sample_ : sample, base_t, prev_t, output);
  }

  at::Tensor step_plms(const at::Tensor& model_output, int64_t t, const at::Tensor& sample_in) {
    const int64_t stride = schedule_.num_train_timesteps / steps_;
    int64_t prev_t = t - stride;
    at::Tensor sample = sample_in;
    if (counter_ != 1) {
      while (ets_.size() > 3) ets_.pop_front();
      ets_.push_back(model_output);
    } else {  // the repeated second timestep: average with the first prediction, from the first sample
      prev_t = t;
      t = t + stride;
    }
    at::Tensor output;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      output = model_output;
      cur_sample_ = sample;
    } else if (n == 1 && counter_ == 1) {
      output = (model_output + ets_.back()) / 2;
      sample = cur_sample_;
      cur_sample_ = at::Tensor();
    } else if (n == 2) {
      output = (3 * ets_[1] - ets_[0]) / 2;
    } else if (n == 3) {
      output = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
    } else {
      output = (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]) / 24;
    }
    ++counter_;
    return prev_sample(sample, t, prev_t, output);
  }

  // Formula (9) of the PNDM paper: x_{t-1} from x_t and the noise estimate.
  at::Tensor prev_sample(const at::Tensor& sample, int64_t t, int64_t prev_t, at::Tensor output) const {
    const double alpha = schedule_.alpha_cumprod(t);
    const double alpha_prev = prev_t >= 0 ? schedule_.alpha_cumprod(prev_t) : final_alpha_cumprod_;
    const double beta = 1 - alpha, beta_prev = 1 - alpha_prev;
    if (prediction_type_ == "v_prediction") output = std::sqrt(alpha) * output + std::sqrt(beta) * sample;
    const double sample_coeff = std::sqrt(alpha_prev / alpha);
    const double denom = alpha * std::sqrt(beta_prev) + std::sqrt(alpha * beta * alpha_prev);
    return sample_coeff * sample - (alpha_prev - alpha) * output / denom;
  }

  NoiseSchedule schedule_;
  std::string prediction_type_, spacing_;
  int64_t steps_offset_;
  bool skip_prk_steps_;
  double final_alpha_cumprod_;
  int64_t steps_ = 0;
  int64_t prk_steps_ = 0;
  int64_t counter_ = 0;
  std::deque<at::Tensor> ets_;
  at::Tensor cur_model_output_, cur_sample_;
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<PndmScheduler>(c, o);
}

}  // namespace sdtune::schedulers
