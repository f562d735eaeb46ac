// Linear multistep (k-diffusion's LMS): the next sample integrates the Lagrange polynomial through
// the last (up to 4) derivatives over [sigma_i, sigma_{i+1}].
#include <torch/torch.h>

#include <deque>

#include "schedulers/registry.h"
#include "schedulers/sigma_scheduler.h"

namespace sdtune::schedulers {

namespace {

constexpr int kOrder = 4;

class LmsScheduler : public SigmaScheduler {
 public:
  LmsScheduler(const ConfigReader& c, const SchedulerOptions& o)
      : SigmaScheduler(c, o, NoiseSchedule::from_config(c, 0.0001, 0.02, "linear")) {}
  std::string name() const override { return "lms"; }
  void set_timesteps(int64_t steps) override {
    build_schedule(steps);
    derivatives_.clear();
  }

  at::Tensor step(const at::Tensor& model_output, int64_t i, const at::Tensor& sample,
                  c10::optional<at::Generator>) override {
    const double s = sigma(i);
    derivatives_.push_back((sample - predict_x0(model_output, sample, s)) / s);
    if (derivatives_.size() > size_t(kOrder)) derivatives_.pop_front();
    const int order = int(std::min<int64_t>(i + 1, kOrder));
    at::Tensor result = sample;
    for (int k = 0; k < order; ++k) result = result + coefficient(order, i, k) * derivatives_[derivatives_.size() - 1 - size_t(k)];
    return result;
  }

 private:
  // Integral over [sigma_i, sigma_{i+1}] of the Lagrange basis polynomial of node sigma_{i-k}
  // among nodes sigma_i .. sigma_{i-order+1}. The integrand has degree < 4, so 4-point
  // Gauss-Legendre quadrature is exact (diffusers uses scipy's adaptive quad).
  double coefficient(int order, int64_t i, int k) const {
    auto basis = [&](double tau) {
      double product = 1.0;
      for (int m = 0; m < order; ++m)
        if (m != k) product *= (tau - sigma(i - m)) / (sigma(i - k) - sigma(i - m));
      return product;
    };
    static const double nodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
    static const double weights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
    const double a = sigma(i), b = sigma(i + 1), half = (b - a) / 2, mid = (a + b) / 2;
    double total = 0;
    for (int q = 0; q < 4; ++q) total += weights[q] * basis(mid + half * nodes[q]);
    return total * half;
  }

  std::deque<at::Tensor> derivatives_;
};

}  // namespace

std::unique_ptr<Scheduler> make_lms(const ConfigReader& c, const SchedulerOptions& o) {
  return std::make_unique<LmsScheduler>(c, o);
}

}  // namespace sdtune::schedulers
