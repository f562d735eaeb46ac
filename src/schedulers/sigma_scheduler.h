// Base of the k-diffusion style samplers (Euler, Euler ancestral, LMS, Heun): they walk a sigma
// schedule, scale the model input by 1/sqrt(sigma^2 + 1) and start from noise of std
// init_noise_sigma.
#pragma once
#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"

namespace sdtune::schedulers {

class SigmaScheduler : public Scheduler {
 public:
  double init_noise_sigma() const override;
  at::Tensor scale_model_input(const at::Tensor& sample, int64_t index) const override;

 protected:
  // Reads the keys all of them share, on top of the class's training `schedule`.
  SigmaScheduler(const ConfigReader& config, const SchedulerOptions& options, NoiseSchedule schedule);

  // timesteps_ (float32) and sigmas_ (float32, N+1 with a final 0) for `steps` steps.
  void build_schedule(int64_t steps);
  double sigma(int64_t index) const { return sigma_values_.at(size_t(index)); }
  // The denoised estimate x0 from the model output at noise level `sigma`.
  at::Tensor predict_x0(const at::Tensor& model_output, const at::Tensor& sample, double sigma) const;

  NoiseSchedule schedule_;
  std::string prediction_type_;
  std::string timestep_spacing_;
  int64_t steps_offset_;
  bool use_karras_sigmas_;
  std::vector<double> sigma_values_;  // float32-rounded sigmas_ as doubles
};

}  // namespace sdtune::schedulers
