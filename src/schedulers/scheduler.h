// A diffusion sampler, independent of any model: it owns the timestep/sigma schedule and turns the
// model's output at step i into the next sample. Mirrors diffusers' SchedulerMixin API, with the
// step index passed explicitly (the pipeline visits the steps in order).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace sdtune::schedulers {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Short name: ddim, pndm, euler, euler_a, dpmpp_2m, lms, heun, unipc.
  virtual std::string name() const = 0;

  // Prepares `steps` inference steps; resets any multistep history.
  virtual void set_timesteps(int64_t steps) = 0;

  // What the model receives at each step (int64 or float32, as diffusers' scheduler.timesteps).
  const at::Tensor& timesteps() const { return timesteps_; }
  int64_t num_steps() const { return timesteps_.defined() ? timesteps_.size(0) : 0; }
  // The sigma schedule (N+1 values ending in 0) for sigma-based schedulers; undefined otherwise.
  const at::Tensor& sigmas() const { return sigmas_; }

  // Standard deviation of the initial noise (pipelines multiply N(0,1) latents by it).
  virtual double init_noise_sigma() const { return 1.0; }

  // The model input at step `index` (sigma schedulers divide by sqrt(sigma^2 + 1)).
  virtual at::Tensor scale_model_input(const at::Tensor& sample, int64_t index) const { return sample; }

  // The sample after step `index`. `generator` (CPU) supplies noise for stochastic samplers.
  virtual at::Tensor step(const at::Tensor& model_output, int64_t index, const at::Tensor& sample,
                          c10::optional<at::Generator> generator) = 0;

 protected:
  at::Tensor timesteps_;
  at::Tensor sigmas_;
};

// Options a user can change on top of the model's scheduler config.
struct SchedulerOptions {
  c10::optional<bool> use_karras_sigmas;  // --karras
  double eta = 0.0;                       // DDIM's eta
};

// The scheduler named by `name` (or, when empty, the one the config's _class_name names), built
// from `config` the way diffusers' Cls.from_config does: keys the class knows are read, the rest
// take that class's defaults. Errors name `where` and the bad key or name.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const nlohmann::json& config,
                                          const SchedulerOptions& options, const std::string& where);

// The short names make_scheduler accepts.
std::vector<std::string> scheduler_names();

}  // namespace sdtune::schedulers
