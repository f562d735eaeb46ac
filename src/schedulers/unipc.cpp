// UniPC (Zhao et al. 2023): a multistep predictor (UniP) and, from the second step on, a corrector
// (UniC) that refines the previous prediction with the new model output, "bh1"/"bh2" variants.
#include <torch/torch.h>

#include <algorithm>
#include <deque>

#include "core/error.h"
#include "schedulers/registry.h"

namespace sdtune::schedulers {

namespace {

// Solves the small dense system A x = b (k <= 3) by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t r = col + 1; r < n; ++r)
      if (std::fabs(a[r][col]) > std::fabs(a[pivot][col])) pivot = r;
    std::swap(a[col], a[pivot]);
    std::swap(b[col], b[pivot]);
    for (size_t r = col + 1; r < n; ++r) {
      const double f = a[r][col] / a[col][col];
      for (size_t c = col; c < n; ++c) a[r][c] -= f * a[col][c];
      b[r] -= f * b[col];
    }
  }
  std::vector<double> x(n);
  for (size_t r = n; r-- > 0;) {
    double v = b[r];
    for (size_t c = r + 1; c < n; ++c) v -= a[r][c] * x[c];
    x[r] = v / a[r][r];
  }
  return x;
}

class UniPcScheduler : public Scheduler {
 public:
  UniPcScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : schedule_(NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")),
        prediction_type_(c.text("prediction_type", "epsilon")),
        spacing_(c.text("timestep_spacing", "linspace")),
        solver_type_(c.text("solver_type", "bh2")),
        steps_offset_(c.integer("steps_offset", 0)),
        order_(c.integer("solver_order", 2)),
        predict_x0_(c.flag("predict_x0", true)),
        lower_order_final_(c.flag("lower_order_final", true)),
        use_karras_sigmas_(o.use_karras_sigmas.value_or(c.flag("use_karras_sigmas", false))) {
    c.check_choice("prediction_type", prediction_type_, {"epsilon", "v_prediction", "sample"});
    c.check_choice("solver_type", solver_type_, {"bh1", "bh2"});
    if (order_ < 1 || order_ > 3) throw Error(c.where(), "solver_order must be 1, 2 or 3");
    if (c.text("final_sigmas_type", "zero") != "zero") throw Error(c.where(), "unsupported final_sigmas_type");
    if (c.flag("thresholding", false)) throw Error(c.where(), "unsupported thresholding");
    for (double step : c.numbers("disable_corrector")) disable_corrector_.push_back(int64_t(step));
    for (const char* key : {"use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas", "use_dynamic_shifting"})
      if (c.flag(key, false)) throw Error(c.where(), std::string("unsupported ") + key);
    if (c.has("solver_p")) throw Error(c.where(), "unsupported solver_p");
  }
  std::string name() const override { return "unipc"; }

  void set_timesteps(int64_t steps) override {
    const int64_t train = schedule_.num_train_timesteps;
    const MultistepSchedule s = multistep_sigmas(schedule_.train_sigmas(), multistep_timesteps(spacing_, train, train, steps, steps_offset_),
                                                 use_karras_sigmas_, true, 0.0);
    sigma_values_ = s.sigmas;
    timesteps_ = torch::tensor(s.timesteps).to(torch::kLong);
    sigmas_ = torch::tensor(s.sigmas).to(torch::kFloat);
    outputs_.clear();
    last_sample_ = at::Tensor();
    lower_order_steps_ = 0;
    this_order_ = 1;
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample_in,
                  c10::optional<at::Generator>) override {
    at::Tensor sample = sample_in;
    const bool use_corrector = i > 0 && last_sample_.defined() &&
                               std::find(disable_corrector_.begin(), disable_corrector_.end(), i - 1) == disable_corrector_.end();
    const at::Tensor converted = convert_model_output(model_output, sample, i);
    if (use_corrector) sample = corrector(converted, i);
    outputs_.push_back(converted);
    if (int64_t(outputs_.size()) > order_) outputs_.pop_front();
    const int64_t n = num_steps();
    const int64_t order = lower_order_final_ ? std::min(order_, n - i) : order_;
    this_order_ = std::min(order, lower_order_steps_ + 1);
    last_sample_ = sample;
    const at::Tensor prev = predictor(sample, i);
    if (lower_order_steps_ < order_) ++lower_order_steps_;
    return prev;
  }

 private:
  at::Tensor convert_model_output(const at::Tensor& output, const at::Tensor& sample, int64_t i) const {
    return convert_prediction(output, sample, sigma_values_.at(size_t(i)), prediction_type_, predict_x0_);
  }

  // The B(h) coefficients shared by predictor and corrector: rk ratios and the phi expansion.
  struct Coefficients {
    std::vector<std::vector<double>> r;  // R[k][j] = rk_j^k
    std::vector<double> b;
    double h_phi_1, b_h;
  };
  Coefficients coefficients(const std::vector<double>& rks, double h, int64_t order) const {
    Coefficients c;
    const double hh = predict_x0_ ? -h : h;
    c.h_phi_1 = std::expm1(hh);
    c.b_h = solver_type_ == "bh1" ? hh : std::expm1(hh);
    double h_phi_k = c.h_phi_1 / hh - 1;
    double factorial = 1;
    for (int64_t k = 1; k <= order; ++k) {
      std::vector<double> row;
      for (double rk : rks) row.push_back(std::pow(rk, double(k - 1)));
      c.r.push_back(row);
      c.b.push_back(h_phi_k * factorial / c.b_h);
      factorial *= double(k + 1);
      h_phi_k = h_phi_k / hh - 1 / factorial;
    }
    return c;
  }

  // Differences of earlier outputs against m0, and their log-SNR ratios; `offset` is how far back
  // the newest of `outputs_` sits from sigma index `i`.
  void differences(int64_t i, int64_t order, int64_t offset, double lambda_s0, double h, const at::Tensor& m0,
                   std::vector<double>* rks, std::vector<at::Tensor>* d1s) const {
    for (int64_t k = 1; k < order; ++k) {
      const double lambda_k = log_snr(sigma_values_.at(size_t(i - k - offset))).lambda;
      const double rk = (lambda_k - lambda_s0) / h;
      rks->push_back(rk);
      d1s->push_back((outputs_[outputs_.size() - 1 - size_t(k)] - m0) / rk);
    }
    rks->push_back(1.0);
  }

  at::Tensor combine(const LogSnr& t, const LogSnr& s0, const at::Tensor& x, const at::Tensor& m0, double h_phi_1) const {
    return predict_x0_ ? (t.sigma / s0.sigma) * x - t.alpha * h_phi_1 * m0 : (t.alpha / s0.alpha) * x - t.sigma * h_phi_1 * m0;
  }

  at::Tensor predictor(const at::Tensor& x, int64_t i) const {
    const int64_t order = this_order_;
    const LogSnr t = log_snr(sigma_values_.at(size_t(i + 1))), s0 = log_snr(sigma_values_.at(size_t(i)));
    const double h = t.lambda - s0.lambda;
    const at::Tensor& m0 = outputs_.back();
    std::vector<double> rks;
    std::vector<at::Tensor> d1s;
    differences(i, order, 0, s0.lambda, h, m0, &rks, &d1s);
    const Coefficients c = coefficients(rks, h, order);
    at::Tensor result = combine(t, s0, x, m0, c.h_phi_1);
    if (!d1s.empty()) {
      std::vector<double> rhos{0.5};
      if (order != 2) {
        std::vector<std::vector<double>> a(size_t(order - 1));
        for (int64_t r = 0; r < order - 1; ++r) a[size_t(r)].assign(c.r[size_t(r)].begin(), c.r[size_t(r)].end() - 1);
        rhos = solve(a, std::vector<double>(c.b.begin(), c.b.end() - 1));
      }
      at::Tensor residual = rhos[0] * d1s[0];
      for (size_t k = 1; k < d1s.size(); ++k) residual = residual + rhos[k] * d1s[k];
      result = result - (predict_x0_ ? t.alpha : t.sigma) * c.b_h * residual;
    }
    return result;
  }

  at::Tensor corrector(const at::Tensor& model_t, int64_t i) const {
    const int64_t order = this_order_;
    const LogSnr t = log_snr(sigma_values_.at(size_t(i))), s0 = log_snr(sigma_values_.at(size_t(i - 1)));
    const double h = t.lambda - s0.lambda;
    const at::Tensor& m0 = outputs_.back();
    std::vector<double> rks;
    std::vector<at::Tensor> d1s;
    differences(i, order, 1, s0.lambda, h, m0, &rks, &d1s);
    const Coefficients c = coefficients(rks, h, order);
    const std::vector<double> rhos = order == 1 ? std::vector<double>{0.5} : solve(c.r, c.b);
    at::Tensor correction = rhos.back() * (model_t - m0);
    for (size_t k = 0; k < d1s.size(); ++k) correction = correction + rhos[k] * d1s[k];
    return combine(t, s0, last_sample_, m0, c.h_phi_1) - (predict_x0_ ? t.alpha : t.sigma) * c.b_h * correction;
  }

  NoiseSchedule schedule_;
  std::string prediction_type_, spacing_, solver_type_;
  int64_t steps_offset_;
  int64_t order_;
  bool predict_x0_, lower_order_final_, use_karras_sigmas_;
  std::vector<int64_t> disable_corrector_;
  std::vector<double> sigma_values_;
  std::deque<at::Tensor> outputs_;
  at::Tensor last_sample_;
  int64_t lower_order_steps_ = 0;
  int64_t this_order_ = 1;
};

}  // namespace

std::unique_ptr<Scheduler> make_unipc(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<UniPcScheduler>(c, o);
}

}  // namespace sdtune::schedulers
