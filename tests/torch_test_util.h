// Tensor comparison helpers for the LibTorch tests.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "schedulers/scheduler.h"

namespace sdtune::test {

// ||a - b|| / ||b|| (the project's numerics measure).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>();
  return diff / std::max(b.to(torch::kDouble).norm().item<double>(), 1e-30);
}

// Every scheduler on both fixture models, as test parameters.
struct SchedulerCase {
  std::string variant;
  std::string scheduler;
};
inline void PrintTo(const SchedulerCase& c, std::ostream* out) { *out << c.variant << " " << c.scheduler; }

inline std::vector<SchedulerCase> every_scheduler_case() {
  std::vector<SchedulerCase> cases;
  for (const char* variant : {"tiny-sd1", "tiny-sd2"})
    for (const auto& name : schedulers::scheduler_names()) cases.push_back({variant, name});
  return cases;
}

inline std::string scheduler_case_name(const ::testing::TestParamInfo<SchedulerCase>& info) {
  std::string v = info.param.variant;
  for (auto& c : v)
    if (c == '-') c = '_';
  return v + "_" + info.param.scheduler;
}

}  // namespace sdtune::test
