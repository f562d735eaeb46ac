// DPM-Solver(++) multistep (Lu et al. 2022), first and second order: "DPM++ 2M" is algorithm
// dpmsolver++ with solver_order 2. Works in log-SNR (lambda) and reuses the previous model output.
#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "schedulers/registry.h"

namespace sdtune::schedulers {

namespace {

class DpmSolverScheduler : public Scheduler {
 public:
  DpmSolverScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : schedule_(NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")),
        prediction_type_(c.text("prediction_type", "epsilon")),
        spacing_(c.text("timestep_spacing", "linspace")),
        algorithm_(c.text("algorithm_type", "dpmsolver++")),
        solver_type_(c.text("solver_type", "midpoint")),
        steps_offset_(c.integer("steps_offset", 0)),
        order_(c.integer("solver_order", 2)),
        lower_order_final_(c.flag("lower_order_final", true)),
        euler_at_final_(c.flag("euler_at_final", false)),
        use_karras_sigmas_(o.use_karras_sigmas.value_or(c.flag("use_karras_sigmas", false))),
        final_sigmas_type_(c.text("final_sigmas_type", "zero")),
        lambda_min_clipped_(c.number_or_infinity("lambda_min_clipped", -std::numeric_limits<double>::infinity())),
        cosine_betas_(c.text("beta_schedule", "linear") == "squaredcos_cap_v2") {
    c.check_choice("prediction_type", prediction_type_, {"epsilon", "v_prediction", "sample"});
    c.check_choice("algorithm_type", algorithm_, {"dpmsolver++", "dpmsolver"});
    // diffusers maps the other solver types of compatible configs onto midpoint.
    if (solver_type_ != "heun") solver_type_ = "midpoint";
    c.check_choice("final_sigmas_type", final_sigmas_type_, {"zero", "sigma_min"});
    if (order_ < 1 || order_ > 2) throw Error(c.where(), "solver_order " + std::to_string(order_) + " is not supported (1 or 2)");
    if (c.flag("thresholding", false)) throw Error(c.where(), "unsupported thresholding");
    for (const char* key : {"use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas"})
      if (c.flag(key, false)) throw Error(c.where(), std::string("unsupported ") + key);
    const std::string variance = c.text("variance_type", "");
    if (!variance.empty()) throw Error(c.where(), "unsupported variance_type " + in_quotes(variance));
  }
  std::string name() const override { return "dpmpp_2m"; }

  void set_timesteps(int64_t steps) override {
    const int64_t train = schedule_.num_train_timesteps;
    const at::Tensor train_sigmas = schedule_.train_sigmas();
    // Timesteps whose log-SNR is below lambda_min_clipped are never used.
    const at::Tensor lambdas = (schedule_.alphas_cumprod.sqrt().log() - (1 - schedule_.alphas_cumprod).sqrt().log()).flip(0);
    const int64_t clipped = (lambdas < lambda_min_clipped_).sum().item<int64_t>();
    const int64_t last = train - clipped;
    const double final_sigma = final_sigmas_type_ == "zero" ? 0.0 : double(train_sigmas[0].item<float>());
    const MultistepSchedule schedule = multistep_sigmas(train_sigmas, multistep_timesteps(spacing_, train, last, steps, steps_offset_),
                                                        use_karras_sigmas_, !cosine_betas_, final_sigma);
    sigma_values_ = schedule.sigmas;
    timesteps_ = torch::tensor(schedule.timesteps).to(torch::kLong);
    sigmas_ = torch::tensor(schedule.sigmas).to(torch::kFloat);
    previous_output_ = at::Tensor();
    lower_order_steps_ = 0;
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample_in,
                  c10::optional<at::Generator>) override {
    const int64_t n = num_steps();
    const bool final_step = i == n - 1 && (euler_at_final_ || (lower_order_final_ && n < 15) || final_sigmas_type_ == "zero");
    const at::Tensor sample = sample_in.to(torch::kFloat);
    const at::Tensor output = convert_model_output(model_output, sample_in, i);
    at::Tensor prev;
    // (diffusers' lower_order_second only matters for third order, which is not supported here)
    if (order_ == 1 || lower_order_steps_ < 1 || final_step)
      prev = first_order_update(output, i, sample);
    else
      prev = second_order_update(output, previous_output_, i, sample);
    previous_output_ = output;
    if (lower_order_steps_ < order_) ++lower_order_steps_;
    return prev.to(model_output.scalar_type());
  }

 private:
  LogSnr at_index(int64_t i) const { return log_snr(sigma_values_.at(size_t(i))); }

  // dpmsolver++ works on the data prediction x0, dpmsolver on the noise prediction.
  at::Tensor convert_model_output(const at::Tensor& output, const at::Tensor& sample, int64_t i) const {
    return convert_prediction(output, sample, sigma_values_.at(size_t(i)), prediction_type_, algorithm_ == "dpmsolver++");
  }

  at::Tensor first_order_update(const at::Tensor& m0, int64_t i, const at::Tensor& sample) const {
    const LogSnr t = at_index(i + 1), s = at_index(i);
    const double h = t.lambda - s.lambda;
    if (algorithm_ == "dpmsolver++") return (t.sigma / s.sigma) * sample - (t.alpha * (std::exp(-h) - 1.0)) * m0;
    return (t.alpha / s.alpha) * sample - (t.sigma * (std::exp(h) - 1.0)) * m0;
  }

  at::Tensor second_order_update(const at::Tensor& m0, const at::Tensor& m1, int64_t i, const at::Tensor& sample) const {
    const LogSnr t = at_index(i + 1), s0 = at_index(i), s1 = at_index(i - 1);
    const double h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
    const at::Tensor d1 = (1.0 / (h0 / h)) * (m0 - m1);
    if (algorithm_ == "dpmsolver++") {
      const double phi = t.alpha * (std::exp(-h) - 1.0);
      const at::Tensor base = (t.sigma / s0.sigma) * sample - phi * m0;
      return solver_type_ == "midpoint" ? base - 0.5 * phi * d1 : base + (t.alpha * ((std::exp(-h) - 1.0) / h + 1.0)) * d1;
    }
    const double phi = t.sigma * (std::exp(h) - 1.0);
    const at::Tensor base = (t.alpha / s0.alpha) * sample - phi * m0;
    return solver_type_ == "midpoint" ? base - 0.5 * phi * d1 : base - (t.sigma * ((std::exp(h) - 1.0) / h - 1.0)) * d1;
  }

  NoiseSchedule schedule_;
  std::string prediction_type_, spacing_, algorithm_, solver_type_;
  int64_t steps_offset_;
  int64_t order_;
  bool lower_order_final_, euler_at_final_, use_karras_sigmas_;
  std::string final_sigmas_type_;
  double lambda_min_clipped_;
  bool cosine_betas_;
  std::vector<double> sigma_values_;
  at::Tensor previous_output_;
  int64_t lower_order_steps_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_solver(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<DpmSolverScheduler>(c, o);
}

}  // namespace sdtune::schedulers
