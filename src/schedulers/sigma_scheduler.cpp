#include "schedulers/sigma_scheduler.h"

#include <torch/torch.h>

#include "core/error.h"

namespace sdtune::schedulers {

SigmaScheduler::SigmaScheduler(const ConfigReader& config, const SchedulerOptions& options, NoiseSchedule schedule)
    : schedule_(std::move(schedule)),
      prediction_type_(config.text("prediction_type", "epsilon")),
      timestep_spacing_(config.text("timestep_spacing", "linspace")),
      steps_offset_(config.integer("steps_offset", 0)),
      use_karras_sigmas_(options.use_karras_sigmas.value_or(config.flag("use_karras_sigmas", false))) {
  config.check_choice("prediction_type", prediction_type_, {"epsilon", "v_prediction", "sample"});
  config.check_choice("timestep_spacing", timestep_spacing_, {"leading", "trailing", "linspace"});
  for (const char* key : {"use_exponential_sigmas", "use_beta_sigmas"})
    if (config.flag(key, false)) throw Error(config.where(), std::string("unsupported ") + key + " (use --karras)");
  if (config.text("interpolation_type", "linear") != "linear") throw Error(config.where(), "unsupported interpolation_type");
  if (config.text("timestep_type", "discrete") != "discrete") throw Error(config.where(), "unsupported timestep_type");
  // The initial schedule covers every training step, as diffusers' constructor does.
  build_schedule(schedule_.num_train_timesteps);
}

void SigmaScheduler::build_schedule(int64_t steps) {
  const at::Tensor train_sigmas = schedule_.train_sigmas();
  std::vector<double> timesteps = spaced_timesteps(timestep_spacing_, schedule_.num_train_timesteps, steps, steps_offset_, false);
  for (double& t : timesteps) t = double(float(t));  // diffusers casts the spacing to float32
  std::vector<double> sigmas = interpolate_sigmas(train_sigmas, timesteps);
  if (use_karras_sigmas_) {
    sigmas = karras_sigmas(sigmas.front(), sigmas.back(), steps);
    const auto log_sigmas = log_sigma_table(train_sigmas);
    for (size_t i = 0; i < sigmas.size(); ++i) timesteps[i] = sigma_to_t(sigmas[i], log_sigmas);
  }
  sigmas.push_back(0.0);
  sigma_values_.clear();
  std::vector<float> sigma_f, timestep_f;
  for (double s : sigmas) sigma_f.push_back(float(s)), sigma_values_.push_back(double(float(s)));
  for (double t : timesteps) timestep_f.push_back(float(t));
  sigmas_ = torch::tensor(sigma_f);
  timesteps_ = torch::tensor(timestep_f);
}

double SigmaScheduler::init_noise_sigma() const {
  const float max_sigma = sigmas_.max().item<float>();
  if (timestep_spacing_ == "linspace" || timestep_spacing_ == "trailing") return max_sigma;
  return double(std::sqrt(max_sigma * max_sigma + 1.0f));
}

at::Tensor SigmaScheduler::scale_model_input(const at::Tensor& sample, int64_t index) const {
  return sample / std::sqrt(sigma(index) * sigma(index) + 1);
}

at::Tensor SigmaScheduler::predict_x0(const at::Tensor& model_output, const at::Tensor& sample, double s) const {
  if (prediction_type_ == "epsilon") return sample - s * model_output;
  if (prediction_type_ == "v_prediction") return model_output * (-s / std::sqrt(s * s + 1)) + sample / (s * s + 1);
  return model_output;
}

}  // namespace sdtune::schedulers
