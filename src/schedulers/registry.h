// Constructors of the individual schedulers, for make_scheduler (factory.cpp) only.
#pragma once
#include <memory>

#include "schedulers/noise_schedule.h"
#include "schedulers/scheduler.h"

namespace sdtune::schedulers {

std::unique_ptr<Scheduler> make_ddim(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_pndm(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_euler(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_euler_ancestral(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_lms(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_heun(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_dpm_solver(const ConfigReader& config, const SchedulerOptions& options);
std::unique_ptr<Scheduler> make_unipc(const ConfigReader& config, const SchedulerOptions& options);

}  // namespace sdtune::schedulers
