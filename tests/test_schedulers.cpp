#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "io/json_file.h"
#include "io/tensor_io.h"
#include "schedulers/scheduler.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

using Case = sdtune::test::SchedulerCase;

class SchedulerFixture : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto& p = GetParam();
    const std::string config_path = data_path(p.variant + "/pipeline/scheduler/scheduler_config.json");
    scheduler_ = sdtune::schedulers::make_scheduler(p.scheduler, sdtune::io::read_json_file(config_path), {}, config_path);
    scheduler_->set_timesteps(10);
    ref_ = sdtune::io::read_all_tensors(data_path(p.variant + "/ref/pipeline_" + p.scheduler + ".safetensors"));
    manifest_ = sdtune::io::read_json_file(data_path(p.variant + "/ref/manifest.json"))["files"]
                    ["ref/pipeline_" + p.scheduler + ".safetensors"]["scheduler"];
  }
  std::unique_ptr<sdtune::schedulers::Scheduler> scheduler_;
  sdtune::io::TensorMap ref_;
  sdtune::io::Json manifest_;
};

TEST_P(SchedulerFixture, TimestepsSigmasAndInitNoiseEqualDiffusers) {
  const auto& expected = ref_.at("timesteps");
  ASSERT_EQ(scheduler_->timesteps().sizes(), expected.sizes());
  EXPECT_EQ(scheduler_->timesteps().scalar_type(), expected.scalar_type());
  EXPECT_TRUE(torch::allclose(scheduler_->timesteps().to(torch::kDouble), expected.to(torch::kDouble), 0, 1e-4))
      << scheduler_->timesteps() << expected;
  if (ref_.count("sigmas")) {
    ASSERT_TRUE(scheduler_->sigmas().defined());
    EXPECT_TRUE(torch::allclose(scheduler_->sigmas(), ref_.at("sigmas"), 1e-6, 1e-7)) << scheduler_->sigmas() << ref_.at("sigmas");
  }
  EXPECT_NEAR(scheduler_->init_noise_sigma(), manifest_["init_noise_sigma"].get<double>(), 1e-5);
}

TEST_P(SchedulerFixture, EveryStepEqualsDiffusers) {
  torch::Tensor sample = ref_.at("sched_only_start");
  const auto& outputs = ref_.at("sched_only_model_outputs");
  const auto& scaled = ref_.at("sched_only_scaled_inputs");
  const auto& expected = ref_.at("sched_only_prev_samples");
  ASSERT_EQ(outputs.size(0), scheduler_->num_steps());
  // One generator seeded once serves every step (euler_a draws from it; the others ignore it).
  const auto generator = at::make_generator<at::CPUGeneratorImpl>(301);
  for (int64_t i = 0; i < scheduler_->num_steps(); ++i) {
    EXPECT_LT(relative_error(scheduler_->scale_model_input(sample, i), scaled[i]), 1e-5) << "step " << i;
    sample = scheduler_->step(outputs[i], i, sample, generator);
    EXPECT_LT(relative_error(sample, expected[i]), 1e-4) << "step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(All, SchedulerFixture, ::testing::ValuesIn(sdtune::test::every_scheduler_case()),
                         sdtune::test::scheduler_case_name);

TEST(Schedulers, ModelDefaultAndBadNames) {
  const std::string path = data_path("tiny-sd1/pipeline/scheduler/scheduler_config.json");
  const auto config = sdtune::io::read_json_file(path);
  EXPECT_EQ(sdtune::schedulers::make_scheduler("", config, {}, path)->name(), "pndm");
  EXPECT_THROW(sdtune::schedulers::make_scheduler("dpm_fancy", config, {}, path), sdtune::Error);
  auto bad = config;
  bad["_class_name"] = "FlowMatchEulerDiscreteScheduler";
  EXPECT_THROW(sdtune::schedulers::make_scheduler("", bad, {}, path), sdtune::Error);
  bad = config;
  bad["beta_schedule"] = "sigmoid";
  EXPECT_THROW(sdtune::schedulers::make_scheduler("ddim", bad, {}, path), sdtune::Error);
  auto ddim = sdtune::schedulers::make_scheduler("ddim", config, {}, path);
  EXPECT_THROW(ddim->set_timesteps(0), sdtune::Error);
  EXPECT_THROW(ddim->set_timesteps(1001), sdtune::Error);
}

TEST(Schedulers, KarrasSigmasFollowTheRhoSevenRamp) {
  const std::string path = data_path("tiny-sd2/pipeline/scheduler/scheduler_config.json");
  sdtune::schedulers::SchedulerOptions karras;
  karras.use_karras_sigmas = true;
  for (const char* name : {"euler", "dpmpp_2m", "lms", "heun"}) {
    auto s = sdtune::schedulers::make_scheduler(name, sdtune::io::read_json_file(path), karras, path);
    s->set_timesteps(20);
    const auto sigmas = s->sigmas();
    EXPECT_EQ(sigmas[-1].item<float>(), 0.f) << name;
    // sigma_i^(1/7) is linear in i between sigma_max and sigma_min.
    const auto roots = std::get<0>(torch::unique_consecutive(sigmas.slice(0, 0, -1))).pow(1.0 / 7);  // Heun repeats sigmas
    const auto steps = roots.slice(0, 1) - roots.slice(0, 0, -1);
    EXPECT_LT((steps - steps.mean()).abs().max().item<float>(), 1e-4) << name;
    EXPECT_TRUE((s->timesteps().slice(0, 1) <= s->timesteps().slice(0, 0, -1)).all().item<bool>()) << name;
  }
}

}  // namespace
