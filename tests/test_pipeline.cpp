#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/json_file.h"
#include "core/error.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"
#include "pipeline/image_output.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

using Case = sdtune::test::SchedulerCase;

class PipelineFixture : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto& p = GetParam();
    folder_ = std::make_unique<sdtune::io::ModelFiles>(data_path(p.variant + "/pipeline"));
    model_ = sdtune::pipeline::load_stable_diffusion(*folder_, {});
    ref_ = sdtune::io::read_all_tensors(data_path(p.variant + "/ref/pipeline_" + p.scheduler + ".safetensors"));
    request_ = sdtune::test::fixture_request(p.variant);
  }
  std::unique_ptr<sdtune::schedulers::Scheduler> scheduler() const {
    return sdtune::schedulers::make_scheduler(GetParam().scheduler, folder_->component_config("scheduler"), {}, "scheduler");
  }
  // Every pixel of the 8-bit image within 2/255 of diffusers' float image.
  static void expect_image_matches(const torch::Tensor& images, const torch::Tensor& reference) {
    const auto rgb = sdtune::pipeline::to_rgb8(images);
    ASSERT_EQ(rgb.size(), 1u);
    const auto ours = torch::from_blob(const_cast<uint8_t*>(rgb[0].pixels.data()), {rgb[0].height, rgb[0].width, 3}, torch::kByte)
                          .permute({2, 0, 1}).to(torch::kFloat);
    EXPECT_LE((ours - reference[0] * 255).abs().max().item<float>(), 2.0f);
  }

  std::unique_ptr<sdtune::io::ModelFiles> folder_;
  sdtune::pipeline::StableDiffusion model_;
  sdtune::io::TensorMap ref_;
  sdtune::pipeline::GenerationRequest request_;
};

TEST_P(PipelineFixture, ExplicitLatentsGiveDiffusersStepsLatentsAndImage) {
  auto request = request_;
  request.init_latents = ref_.at("init_latents");
  auto s = scheduler();
  std::vector<torch::Tensor> steps;
  const auto result = sdtune::pipeline::generate(model_, *s, request, [&](int64_t done, int64_t, const at::Tensor& latents) {
    if (done > 0) steps.push_back(latents.clone());
  });
  const auto& expected_steps = ref_.at("step_latents_explicit");
  ASSERT_EQ(int64_t(steps.size()), expected_steps.size(0));
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_LT(relative_error(steps[i], expected_steps[int64_t(i)]), 1e-3) << "step " << i;
  EXPECT_LT(relative_error(result.latents, ref_.at("latents_explicit")), 1e-3);
  expect_image_matches(result.images, ref_.at("image_explicit"));
}

TEST_P(PipelineFixture, SameSeedGivesDiffusersLatentsAndImage) {
  auto s = scheduler();
  const auto result = sdtune::pipeline::generate(model_, *s, request_);
  EXPECT_LT(relative_error(result.latents, ref_.at("latents_seed")), 1e-3);
  expect_image_matches(result.images, ref_.at("image_seed"));
}

INSTANTIATE_TEST_SUITE_P(All, PipelineFixture, ::testing::ValuesIn(sdtune::test::every_scheduler_case()),
                         sdtune::test::scheduler_case_name);

TEST(Pipeline, BatchSizeAndNumImagesFollowOneBatchedDraw) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  sdtune::pipeline::GenerationRequest r;
  r.prompt = "a castle";
  r.steps = 4;
  r.num_images = 3;
  r.seed = 7;
  auto all_at_once = sdtune::schedulers::make_scheduler("euler_a", folder.component_config("scheduler"), {}, "s");
  const auto whole = sdtune::pipeline::generate(model, *all_at_once, r);
  r.batch_size = 2;
  auto split = sdtune::schedulers::make_scheduler("euler_a", folder.component_config("scheduler"), {}, "s");
  const auto parts = sdtune::pipeline::generate(model, *split, r);
  EXPECT_EQ(whole.latents.size(0), 3);
  EXPECT_LT(relative_error(parts.latents, whole.latents), 1e-5);
  EXPECT_GT((whole.latents[0] - whole.latents[1]).abs().max().item<float>(), 0.1f);  // different draws per image
}

TEST(Pipeline, RejectsBadSizes) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  auto s = sdtune::schedulers::make_scheduler("", folder.component_config("scheduler"), {}, "s");
  sdtune::pipeline::GenerationRequest r;
  r.width = 20;
  EXPECT_THROW(sdtune::pipeline::generate(model, *s, r), sdtune::Error);
  r.width = 16;
  r.steps = 0;
  EXPECT_THROW(sdtune::pipeline::generate(model, *s, r), sdtune::Error);
}

TEST(Pipeline, GuidanceRescaleMatchesFormula) {
  torch::manual_seed(0);
  const auto guided = torch::randn({2, 4, 3, 3}), text = torch::randn({2, 4, 3, 3});
  const auto out = sdtune::pipeline::rescale_noise_cfg(guided, text, 0.7);
  const auto std_text = text.std({1, 2, 3}, true, true), std_cfg = guided.std({1, 2, 3}, true, true);
  EXPECT_TRUE(torch::allclose(out, 0.7 * guided * (std_text / std_cfg) + 0.3 * guided));
}

}  // namespace
