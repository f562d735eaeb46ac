// Tensor comparison helpers for the LibTorch tests.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/json_file.h"
#include "pipeline/text_to_image.h"
#include "schedulers/scheduler.h"
#include "test_util.h"

namespace sdtune::test {

// ||a - b|| / ||b|| (the project's numerics measure).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const auto diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>();
  return diff / std::max(b.to(torch::kDouble).norm().item<double>(), 1e-30);
}

// The request diffusers' fixture script ran for a fixture model's pipeline references (its manifest).
inline pipeline::GenerationRequest fixture_request(const std::string& variant) {
  const auto constants = io::read_json_file(data_path(variant + "/ref/manifest.json"))["constants"];
  pipeline::GenerationRequest request;
  request.prompt = constants["PROMPTS"][0];
  request.negative_prompt = constants["PROMPTS"][5];
  request.guidance_scale = constants["GUIDANCE_SCALE"];
  request.steps = constants["NUM_INFERENCE_STEPS"];
  request.seed = constants["SEED"];
  request.height = constants["image_hw"][0];
  request.width = constants["image_hw"][1];
  return request;
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
