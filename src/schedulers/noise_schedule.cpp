#include "schedulers/noise_schedule.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"

namespace sdtune::schedulers {

ConfigReader::ConfigReader(const nlohmann::json& config, std::string where)
    : config_(std::make_shared<const nlohmann::json>(config)), where_(std::move(where)) {
  if (!config_->is_object()) throw Error(where_, "scheduler config must be a JSON object");
  use_defaults_ = io::config_value<std::vector<std::string>>(*config_, "_use_default_values", {}, where_);
}

bool ConfigReader::has(const std::string& key) const {
  auto it = config_->find(key);
  return it != config_->end() && !it->is_null() &&
         std::find(use_defaults_.begin(), use_defaults_.end(), key) == use_defaults_.end();
}


double ConfigReader::number(const std::string& key, double fallback) const {
  return has(key) ? io::config_value<double>(*config_, key, fallback, where_) : fallback;
}
double ConfigReader::number_or_infinity(const std::string& key, double fallback) const {
  return has(key) ? io::config_number_or_infinity(*config_, key, fallback, where_) : fallback;
}
int64_t ConfigReader::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? io::config_value<int64_t>(*config_, key, fallback, where_) : fallback;
}
bool ConfigReader::flag(const std::string& key, bool fallback) const {
  return has(key) ? io::config_value<bool>(*config_, key, fallback, where_) : fallback;
}
std::vector<double> ConfigReader::numbers(const std::string& key) const {
  return has(key) ? io::config_value<std::vector<double>>(*config_, key, {}, where_) : std::vector<double>();
}
std::string ConfigReader::text(const std::string& key, const std::string& fallback) const {
  return has(key) ? io::config_value<std::string>(*config_, key, fallback, where_) : fallback;
}

void ConfigReader::check_choice(const std::string& key, const std::string& value, const std::vector<std::string>& allowed) const {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw Error(where_, "unsupported " + key + " " + in_quotes(value) + " (supported: " + list + ")");
}

namespace {

// betas_for_alpha_bar with the cosine schedule ("squaredcos_cap_v2").
at::Tensor cosine_betas(int64_t steps) {
  auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
  std::vector<float> betas;
  for (int64_t i = 0; i < steps; ++i) {
    const double t1 = double(i) / double(steps), t2 = double(i + 1) / double(steps);
    betas.push_back(float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999)));
  }
  return torch::tensor(betas);
}

// Rescales betas to zero terminal SNR (Lin et al. 2023), as diffusers' rescale_zero_terminal_snr.
at::Tensor rescale_zero_terminal_snr(const at::Tensor& betas) {
  torch::Tensor sqrt_bar = torch::cumprod(1.0 - betas, 0).sqrt();
  const torch::Tensor first = sqrt_bar[0].clone(), last = sqrt_bar[-1].clone();
  sqrt_bar = (sqrt_bar - last) * (first / (first - last));
  const torch::Tensor bar = sqrt_bar.pow(2);
  const torch::Tensor alphas = torch::cat({bar.slice(0, 0, 1), bar.slice(0, 1) / bar.slice(0, 0, -1)});
  return 1 - alphas;
}

}  // namespace

NoiseSchedule NoiseSchedule::from_config(const ConfigReader& config, double default_beta_start, double default_beta_end,
                                         const std::string& default_beta_schedule) {
  NoiseSchedule s;
  s.num_train_timesteps = config.integer("num_train_timesteps", 1000);
  if (s.num_train_timesteps < 2 || s.num_train_timesteps > 100000)
    throw Error(config.where(), "num_train_timesteps must be between 2 and 100000");
  const double beta_start = config.number("beta_start", default_beta_start);
  const double beta_end = config.number("beta_end", default_beta_end);
  const std::string schedule = config.text("beta_schedule", default_beta_schedule);
  // beta = 1 would zero alpha_bar and divide by zero in every sigma.
  for (const auto& [key, beta] : {std::pair<const char*, double>{"beta_start", beta_start}, {"beta_end", beta_end}})
    if (!(beta >= 0 && beta < 1)) throw Error(config.where(), std::string("config key \"") + key + "\" must be in [0, 1), got " + std::to_string(beta));
  at::Tensor betas;
  if (config.has("trained_betas")) {
    const std::vector<double> values = config.numbers("trained_betas");
    if (int64_t(values.size()) != s.num_train_timesteps) throw Error(config.where(), "trained_betas must have num_train_timesteps values");
    for (double beta : values)
      if (!(beta >= 0 && beta < 1)) throw Error(config.where(), "trained_betas must each be in [0, 1), got " + std::to_string(beta));
    betas = torch::tensor(values).to(torch::kFloat);
  } else if (schedule == "linear") {
    betas = torch::linspace(beta_start, beta_end, s.num_train_timesteps, torch::kFloat);
  } else if (schedule == "scaled_linear") {
    betas = torch::linspace(std::sqrt(beta_start), std::sqrt(beta_end), s.num_train_timesteps, torch::kFloat).pow(2);
  } else if (schedule == "squaredcos_cap_v2") {
    betas = cosine_betas(s.num_train_timesteps);
  } else {
    config.check_choice("beta_schedule", schedule, {"linear", "scaled_linear", "squaredcos_cap_v2"});
  }
  if (config.flag("rescale_betas_zero_snr", false)) betas = rescale_zero_terminal_snr(betas);
  s.alphas_cumprod = torch::cumprod(1.0 - betas, 0);
  return s;
}

double NoiseSchedule::alpha_cumprod(int64_t t) const {
  if (t < 0 || t >= num_train_timesteps)
    throw Error("steps_offset", "timestep " + std::to_string(t) + " is outside the training schedule 0.." + std::to_string(num_train_timesteps - 1) +
                                    " (the scheduler config's steps_offset is too large for this many steps)");
  return double(alphas_cumprod[t].item<float>());
}

namespace {

// sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) for each timestep, shaped to broadcast over `like`.
std::pair<at::Tensor, at::Tensor> signal_and_noise_scales(const at::Tensor& alphas_cumprod, const at::Tensor& timesteps, const at::Tensor& like) {
  const at::Tensor a = alphas_cumprod.to(like.device()).to(like.scalar_type()).index_select(0, timesteps.to(like.device()).to(torch::kLong).flatten());
  std::vector<int64_t> shape(size_t(like.dim()), 1);
  shape[0] = a.size(0);
  return {a.pow(0.5).view(shape), (1 - a).pow(0.5).view(shape)};
}

}  // namespace

at::Tensor NoiseSchedule::add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& timesteps) const {
  const auto [signal, noise_scale] = signal_and_noise_scales(alphas_cumprod, timesteps, x0);
  return signal * x0 + noise_scale * noise;
}

at::Tensor NoiseSchedule::velocity(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& timesteps) const {
  const auto [signal, noise_scale] = signal_and_noise_scales(alphas_cumprod, timesteps, x0);
  return signal * noise - noise_scale * x0;
}

at::Tensor NoiseSchedule::train_sigmas() const { return ((1 - alphas_cumprod) / alphas_cumprod).pow(0.5); }

namespace {

// round(np.arange(last, 0, -train_steps / steps)) - 1. numpy's arange has ceil(last / step) entries
// computed in floating point, which can be one more than `steps`; diffusers inherits that.
std::vector<double> trailing_timesteps(int64_t train_steps, int64_t last, int64_t steps) {
  const double ratio = double(train_steps) / double(steps);
  const auto count = int64_t(std::ceil(double(last) / ratio));
  std::vector<double> t;
  for (int64_t k = 0; k < count; ++k) t.push_back(std::nearbyint(double(last) - double(k) * ratio) - 1);
  return t;
}

// An absurd steps_offset pushes timesteps far outside the training schedule. One past its end is
// what diffusers itself gives for leading spacing with steps_offset 1 at full steps (sigma samplers
// clamp it; alpha_cumprod refuses it).
void check_timesteps(const std::vector<double>& timesteps, int64_t train_steps, int64_t steps_offset) {
  for (double t : timesteps)
    if (!(t >= 0 && t <= double(train_steps)))
      throw Error("steps_offset", "the scheduler config's steps_offset " + std::to_string(steps_offset) + " gives timestep " +
                                      std::to_string(int64_t(t)) + ", outside 0.." + std::to_string(train_steps - 1));
}

}  // namespace

std::vector<double> spaced_timesteps(const std::string& spacing, int64_t train_steps, int64_t steps, int64_t steps_offset,
                                     bool round_linspace) {
  if (steps < 1 || steps > train_steps)
    throw Error("--num_inference_steps", "must be between 1 and " + std::to_string(train_steps) + ", got " + std::to_string(steps));
  std::vector<double> t;
  if (spacing == "linspace") {
    for (int64_t i = steps - 1; i >= 0; --i) {
      const double v = steps == 1 ? 0.0 : double(train_steps - 1) * double(i) / double(steps - 1);
      t.push_back(round_linspace ? std::nearbyint(v) : v);
    }
  } else if (spacing == "leading") {
    const int64_t ratio = train_steps / steps;
    for (int64_t i = steps - 1; i >= 0; --i) t.push_back(double(i * ratio + steps_offset));
  } else if (spacing == "trailing") {
    t = trailing_timesteps(train_steps, train_steps, steps);
  } else {
    throw Error("timestep_spacing", "unsupported value " + in_quotes(spacing) + " (expected leading, trailing or linspace)");
  }
  check_timesteps(t, train_steps, steps_offset);
  return t;
}

std::vector<double> multistep_timesteps(const std::string& spacing, int64_t train_steps, int64_t last, int64_t steps,
                                        int64_t steps_offset) {
  if (steps < 1 || steps > last)
    throw Error("--num_inference_steps", "must be between 1 and " + std::to_string(last) + ", got " + std::to_string(steps));
  std::vector<double> t;
  if (spacing == "linspace") {
    for (int64_t i = steps; i >= 1; --i) t.push_back(std::nearbyint(double(last - 1) * double(i) / double(steps)));
  } else if (spacing == "leading") {
    const int64_t ratio = last / (steps + 1);
    for (int64_t i = steps; i >= 1; --i) t.push_back(double(i * ratio + steps_offset));
  } else if (spacing == "trailing") {
    t = trailing_timesteps(train_steps, last, steps);
  } else {
    throw Error("timestep_spacing", "unsupported value " + in_quotes(spacing) + " (expected leading, trailing or linspace)");
  }
  check_timesteps(t, train_steps, steps_offset);
  return t;
}

MultistepSchedule multistep_sigmas(const at::Tensor& train_sigmas, std::vector<double> timesteps, bool karras,
                                   bool round_karras, double final_sigma) {
  MultistepSchedule out;
  if (karras) {
    const at::Tensor table = train_sigmas.contiguous();
    const float* s = table.data_ptr<float>();
    out.sigmas = karras_sigmas(s[table.numel() - 1], s[0], int64_t(timesteps.size()));
    const auto log_sigmas = log_sigma_table(train_sigmas);
    for (double sigma : out.sigmas) {
      const double t = sigma_to_t(sigma, log_sigmas);
      out.timesteps.push_back(round_karras ? std::nearbyint(t) : t);
    }
  } else {
    out.sigmas = interpolate_sigmas(train_sigmas, timesteps);
    out.timesteps = std::move(timesteps);
  }
  out.sigmas.push_back(final_sigma);
  for (double& sigma : out.sigmas) sigma = double(float(sigma));
  return out;
}

LogSnr log_snr(double sigma) {
  const double alpha = 1 / std::sqrt(sigma * sigma + 1);
  return {alpha, sigma * alpha, std::log(alpha) - std::log(sigma * alpha)};
}

at::Tensor convert_prediction(const at::Tensor& output, const at::Tensor& sample, double sigma,
                              const std::string& prediction_type, bool data) {
  const LogSnr a = log_snr(sigma);
  if (data) {
    if (prediction_type == "epsilon") return (sample - a.sigma * output) / a.alpha;
    if (prediction_type == "v_prediction") return a.alpha * sample - a.sigma * output;
    return output;
  }
  if (prediction_type == "epsilon") return output;
  if (prediction_type == "v_prediction") return a.alpha * output + a.sigma * sample;
  return (sample - a.alpha * output) / a.sigma;
}

std::vector<double> interpolate_sigmas(const at::Tensor& train_sigmas, const std::vector<double>& timesteps) {
  const auto table = train_sigmas.contiguous();
  const float* s = table.data_ptr<float>();
  const int64_t n = table.numel();
  std::vector<double> out;
  for (double t : timesteps) {
    if (t <= 0) {
      out.push_back(s[0]);
    } else if (t >= double(n - 1)) {
      out.push_back(s[n - 1]);
    } else {
      const auto i = int64_t(std::floor(t));
      const double w = t - double(i);
      out.push_back(double(s[i]) + (double(s[i + 1]) - double(s[i])) * w);
    }
  }
  return out;
}

std::vector<double> karras_sigmas(double sigma_max, double sigma_min, int64_t steps) {
  constexpr double rho = 7.0;
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> out;
  for (int64_t i = 0; i < steps; ++i) {
    const double ramp = steps == 1 ? 0.0 : double(i) / double(steps - 1);
    out.push_back(std::pow(max_inv + ramp * (min_inv - max_inv), rho));
  }
  return out;
}

std::vector<float> log_sigma_table(const at::Tensor& train_sigmas) {
  const at::Tensor logs = train_sigmas.log().contiguous();
  return {logs.data_ptr<float>(), logs.data_ptr<float>() + logs.numel()};
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const auto n = int64_t(log_sigmas.size());
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - double(log_sigmas[i]) >= 0) low = i;
  low = std::min(low, n - 2);
  const double lo = log_sigmas[low], hi = log_sigmas[low + 1];
  const double w = std::clamp((lo - log_sigma) / (lo - hi), 0.0, 1.0);
  return (1 - w) * double(low) + w * double(low + 1);
}

}  // namespace sdtune::schedulers
