// Reduced precision (bf16, fp16) and other devices against diffusers' fp32 references on the fixtures:
// images within 8/255 per pixel and 2/255 on average, one LoRA training step's gradients close to the
// fp32 ones. SDTUNE_TEST_DEVICE=cuda runs the same cases on the GPU (scripts/gpu-check does).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "io/json_file.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "lora/lora_adapters.h"
#include "lora/lora_file.h"
#include "pipeline/components.h"
#include "pipeline/image_output.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

// The device under test; asking for CUDA where there is none fails rather than passing on the CPU.
c10::Device device_under_test() {
  const char* name = std::getenv("SDTUNE_TEST_DEVICE");
  const c10::Device device(name && *name ? name : "cpu");
  if (device.is_cuda() && !torch::cuda::is_available()) ADD_FAILURE() << "SDTUNE_TEST_DEVICE=cuda but CUDA is not available";
  return device;
}

at::ScalarType dtype_named(const std::string& name) {
  return name == "bf16" ? at::kBFloat16 : name == "fp16" ? at::kHalf : at::kFloat;
}

// fp16 has no CPU matrix products in LibTorch 1.13 and sdtune refuses it there.
bool runs_on(const c10::Device& device, const std::string& dtype) { return dtype != "fp16" || device.is_cuda(); }

struct GenerationCase {
  std::string variant, scheduler, dtype;
};
void PrintTo(const GenerationCase& c, std::ostream* out) { *out << c.variant << " " << c.scheduler << " " << c.dtype; }

class LowPrecisionGeneration : public ::testing::TestWithParam<GenerationCase> {};

TEST_P(LowPrecisionGeneration, ImageWithinToleranceOfDiffusersFp32) {
  const auto& c = GetParam();
  const auto device = device_under_test();
  if (!runs_on(device, c.dtype)) GTEST_SKIP() << "fp16 runs on CUDA only";
  sdtune::io::ModelFiles folder(data_path(c.variant + "/pipeline"));
  sdtune::pipeline::LoadOptions load;
  load.dtype = dtype_named(c.dtype);
  load.device = device;
  load.channels_last = device.is_cuda();  // as the CLI loads for CUDA
  auto model = sdtune::pipeline::load_stable_diffusion(folder, load);
  const auto ref = sdtune::io::read_all_tensors(data_path(c.variant + "/ref/pipeline_" + c.scheduler + ".safetensors"));
  const auto request = sdtune::test::fixture_request(c.variant);
  auto scheduler = sdtune::schedulers::make_scheduler(c.scheduler, folder.component_config("scheduler"), {}, "scheduler");
  const auto result = sdtune::pipeline::generate(model, *scheduler, request);

  const auto rgb = sdtune::pipeline::to_rgb8(result.images.cpu());
  ASSERT_EQ(rgb.size(), 1u);
  const auto ours = torch::from_blob(const_cast<uint8_t*>(rgb[0].pixels.data()), {rgb[0].height, rgb[0].width, 3}, torch::kByte)
                        .permute({2, 0, 1}).to(torch::kFloat);
  const auto difference = (ours - ref.at("image_seed")[0] * 255).abs();
  const float max_difference = difference.max().item<float>(), mean_difference = difference.mean().item<float>();
  RecordProperty("max_difference_255", std::to_string(max_difference));
  RecordProperty("mean_difference_255", std::to_string(mean_difference));
  const bool full = c.dtype == "fp32";
  EXPECT_LE(max_difference, full ? 2.0f : 8.0f);
  EXPECT_LE(mean_difference, full ? 0.5f : 2.0f);
}

std::vector<GenerationCase> generation_cases() {
  std::vector<GenerationCase> cases;
  for (const char* variant : {"tiny-sd1", "tiny-sd2"})
    for (const char* scheduler : {"euler_a", "dpmpp_2m"})
      for (const char* dtype : {"fp32", "bf16", "fp16"}) cases.push_back({variant, scheduler, dtype});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Precision, LowPrecisionGeneration, ::testing::ValuesIn(generation_cases()),
                         [](const ::testing::TestParamInfo<GenerationCase>& info) {
                           std::string name = info.param.variant + "_" + info.param.scheduler + "_" + info.param.dtype;
                           for (auto& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

class LowPrecisionTraining : public ::testing::TestWithParam<std::string> {};

// diffusers' script's step on the fixture (the reference is fp32 on the CPU) with the frozen UNet in
// the dtype under test and the LoRA weights in fp32, as `--mixed_precision` trains.
TEST_P(LowPrecisionTraining, LoraGradientsCloseToFp32) {
  const std::string dtype_name = GetParam();
  const auto device = device_under_test();
  if (!runs_on(device, dtype_name)) GTEST_SKIP() << "fp16 runs on CUDA only";
  const auto dtype = dtype_named(dtype_name);
  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  sdtune::pipeline::LoadOptions load;
  load.dtype = dtype;
  load.device = device;
  auto unet = sdtune::pipeline::load_unet(folder, load);
  for (auto& p : unet->parameters()) p.requires_grad_(false);
  unet->train();
  const auto ref = sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/train_step.safetensors"));
  const auto names = sdtune::io::read_json_file(data_path("tiny-sd2/ref/manifest.json"))["files"]["ref/train_step.safetensors"]
                                                                                          ["lora_param_names"].get<std::vector<std::string>>();
  auto adapters = sdtune::lora::LoraAdapters::attach_from(*unet, sdtune::lora::read_lora(data_path("tiny-sd2/lora")),
                                                          sdtune::lora::Component::UNet);
  auto on_device = [&](const char* key) { return ref.at(key).to(device).to(dtype); };
  const auto prediction = unet->forward(on_device("noisy_latents"), ref.at("timesteps").to(device), on_device("encoder_hidden_states"));
  const auto loss = torch::mse_loss(prediction.to(torch::kFloat), ref.at("target").to(device));
  loss.backward();

  // Tolerances: fp32 on the CPU as the training-step test; on CUDA cuDNN convolutions use TF32 by default
  // (as in PyTorch), ~1e-3 per product. bf16/fp16 keep 8/11 significant bits: measured on the CPU with
  // bf16, all gradients together are within 1.3e-2 (LibTorch 2.11) / 2.3e-2 (1.13) of fp32, and the
  // worst single tensor (a small one in the mid block, where errors do not average out) within 6.9e-2 /
  // 1.2e-1; a wrong dtype path gives ~1.
  const bool full = dtype == at::kFloat;
  const double overall_tolerance = full ? (device.is_cuda() ? 5e-3 : 1e-4) : 4e-2;
  const double tensor_tolerance = full ? overall_tolerance : 1.5e-1;
  const double reference_loss = ref.at("loss").item<double>();
  EXPECT_NEAR(loss.item<double>(), reference_loss, (full ? 1e-3 : 2e-2) * reference_loss);
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& [name, t] : adapters.named_parameters()) by_name[name] = t;
  ASSERT_EQ(by_name.size(), names.size());
  std::vector<torch::Tensor> ours, expected;
  double worst = 0;
  for (const auto& name : names) {
    const auto& grad = by_name.at(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_EQ(grad.scalar_type(), torch::kFloat) << name;  // LoRA weights and their gradients stay fp32
    ours.push_back(grad.cpu().flatten());
    expected.push_back(ref.at("grad." + name).flatten());
    const double error = relative_error(ours.back(), expected.back());
    worst = std::max(worst, error);
    EXPECT_LT(error, tensor_tolerance) << name;
  }
  const double overall = relative_error(torch::cat(ours), torch::cat(expected));
  EXPECT_LT(overall, overall_tolerance);
  RecordProperty("worst_gradient_relative_error", std::to_string(worst));
  RecordProperty("gradient_relative_error", std::to_string(overall));
}

INSTANTIATE_TEST_SUITE_P(Precision, LowPrecisionTraining, ::testing::Values("fp32", "bf16", "fp16"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
