// What every scheduler shares: the training noise schedule (betas -> alphas_cumprod), the ways of
// spacing inference timesteps, and sigma-schedule helpers (interpolation, Karras).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace sdtune::schedulers {

// Reads scheduler config keys like diffusers' from_config: a key listed in "_use_default_values"
// counts as absent, so the reading class's default applies.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& config, std::string where);
  double number(const std::string& key, double fallback) const;  // finite
  double number_or_infinity(const std::string& key, double fallback) const;  // +-Infinity allowed, NaN not
  int64_t integer(const std::string& key, int64_t fallback) const;
  bool flag(const std::string& key, bool fallback) const;
  std::string text(const std::string& key, const std::string& fallback) const;
  std::vector<double> numbers(const std::string& key) const;  // empty when absent
  bool has(const std::string& key) const;
  const std::string& where() const { return where_; }
  // Error unless `value` is one of `allowed`.
  void check_choice(const std::string& key, const std::string& value, const std::vector<std::string>& allowed) const;

 private:
  std::shared_ptr<const nlohmann::json> config_;  // a copy: readers may outlive the caller's JSON
  std::string where_;
  std::vector<std::string> use_defaults_;
};

// The training-time noise schedule every scheduler is built on.
struct NoiseSchedule {
  int64_t num_train_timesteps = 1000;
  at::Tensor alphas_cumprod;  // [T] float32, exactly as diffusers computes it

  // num_train_timesteps, beta_start/end, beta_schedule, trained_betas, rescale_betas_zero_snr,
  // with the given class defaults for beta_start/beta_end/beta_schedule.
  static NoiseSchedule from_config(const ConfigReader& config, double default_beta_start, double default_beta_end,
                                   const std::string& default_beta_schedule);
  double alpha_cumprod(int64_t t) const;
  // The DDPM forward process for training: sqrt(a_t) x0 + sqrt(1 - a_t) noise, per batch item.
  at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& timesteps) const;
  // The v-prediction target sqrt(a_t) noise - sqrt(1 - a_t) x0 (Salimans & Ho 2022).
  at::Tensor velocity(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& timesteps) const;
  // sigma_t = sqrt((1 - alpha_bar) / alpha_bar) for every training timestep, float32 [T].
  at::Tensor train_sigmas() const;
};

// diffusers' timestep_spacing as float values (before any cast): "leading" (+ steps_offset),
// "trailing", or "linspace" (rounded when `round_linspace`).
std::vector<double> spaced_timesteps(const std::string& spacing, int64_t train_steps, int64_t steps, int64_t steps_offset,
                                     bool round_linspace);

// The multistep solvers' spacing (DPM-Solver, UniPC): n+1 points, the last (t = 0) dropped, over
// training timesteps [0, last_timestep). Integer-valued.
std::vector<double> multistep_timesteps(const std::string& spacing, int64_t train_steps, int64_t last_timestep,
                                        int64_t steps, int64_t steps_offset);

// The multistep solvers' sigmas at `timesteps` (interpolated), or a Karras schedule whose timesteps
// become the matching training steps (rounded unless `round_karras` is false); `final_sigma`
// appended. Sigmas are rounded to float32 as diffusers stores them.
struct MultistepSchedule {
  std::vector<double> timesteps;
  std::vector<double> sigmas;  // timesteps.size() + 1
};
MultistepSchedule multistep_sigmas(const at::Tensor& train_sigmas, std::vector<double> timesteps, bool karras,
                                   bool round_karras, double final_sigma);

// alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma * alpha_t and lambda = log(alpha_t/sigma_t) of a sigma.
struct LogSnr {
  double alpha, sigma, lambda;
};
LogSnr log_snr(double sigma);

// The model output of a multistep solver as a prediction of the clean sample x0 (`data`) or of the
// noise, for prediction_type epsilon / v_prediction / sample at noise level `sigma`.
at::Tensor convert_prediction(const at::Tensor& output, const at::Tensor& sample, double sigma,
                              const std::string& prediction_type, bool data);

// np.interp(t, arange(T), train_sigmas) for each t.
std::vector<double> interpolate_sigmas(const at::Tensor& train_sigmas, const std::vector<double>& timesteps);

// Karras et al. (2022) rho=7 ramp from sigmas.front() to sigmas.back() (or the given bounds).
std::vector<double> karras_sigmas(double sigma_max, double sigma_min, int64_t steps);

// log(train_sigmas) in float32, as numpy's log of diffusers' float32 array; computed once per schedule.
std::vector<float> log_sigma_table(const at::Tensor& train_sigmas);

// The (fractional) training timestep whose log-sigma is `sigma`'s, interpolated (diffusers' _sigma_to_t).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);

}  // namespace sdtune::schedulers
