#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"
#include "schedulers/registry.h"

namespace sdtune::schedulers {

namespace {

struct Entry {
  const char* name;
  const char* diffusers_class;
  std::unique_ptr<Scheduler> (*make)(const ConfigReader&, const SchedulerOptions&);
};

const Entry kSchedulers[] = {
    {"ddim", "DDIMScheduler", make_ddim},
    {"pndm", "PNDMScheduler", make_pndm},
    {"euler", "EulerDiscreteScheduler", make_euler},
    {"euler_a", "EulerAncestralDiscreteScheduler", make_euler_ancestral},
    {"dpmpp_2m", "DPMSolverMultistepScheduler", make_dpm_solver},
    {"lms", "LMSDiscreteScheduler", make_lms},
    {"heun", "HeunDiscreteScheduler", make_heun},
    {"unipc", "UniPCMultistepScheduler", make_unipc},
};

std::string name_list() {
  std::string list;
  for (const auto& e : kSchedulers) list += (list.empty() ? "" : ", ") + std::string(e.name);
  return list;
}

}  // namespace

std::vector<std::string> scheduler_names() {
  std::vector<std::string> names;
  for (const auto& e : kSchedulers) names.push_back(e.name);
  return names;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const nlohmann::json& config,
                                          const SchedulerOptions& options, const std::string& where) {
  const ConfigReader reader(config, where);
  std::string wanted = name;
  if (wanted.empty()) {  // the model's own scheduler
    const std::string cls = io::config_value<std::string>(config, "_class_name", "", where);
    for (const auto& e : kSchedulers)
      if (cls == e.diffusers_class) wanted = e.name;
    if (wanted.empty())
      throw Error(where, "scheduler class " + in_quotes(cls) + " is not supported; pick one with --scheduler (" + name_list() + ")");
  }
  for (const auto& e : kSchedulers)
    if (wanted == e.name) return e.make(reader, options);
  throw Error("--scheduler", "unknown scheduler " + in_quotes(wanted) + " (expected one of " + name_list() + ")");
}

}  // namespace sdtune::schedulers
