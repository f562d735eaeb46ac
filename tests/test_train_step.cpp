// One LoRA training step of diffusers' train_text_to_image_lora.py, reproduced from its pieces:
// forward process, v-prediction target, UNet with LoRA side paths, MSE, gradients, AdamW.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

#include "core/error.h"
#include "io/image_file.h"
#include "io/json_file.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "lora/lora_adapters.h"
#include "pipeline/components.h"
#include "schedulers/noise_schedule.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

TEST(TrainStep, OneStepEqualsDiffusersScript) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  auto unet = sdtune::pipeline::load_unet(folder, {});
  for (auto& p : unet->parameters()) p.requires_grad_(false);  // frozen base model
  unet->train();
  const auto ref = sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/train_step.safetensors"));
  const auto manifest = sdtune::io::read_json_file(data_path("tiny-sd2/ref/manifest.json"))["files"]["ref/train_step.safetensors"];

  // DDPMScheduler.from_pretrained(...): its class defaults under the pipeline's config.
  const auto config = folder.component_config("scheduler");
  const sdtune::schedulers::ConfigReader reader(config, "scheduler");
  const auto schedule = sdtune::schedulers::NoiseSchedule::from_config(reader, 0.0001, 0.02, "linear");
  const auto noisy = schedule.add_noise(ref.at("latents"), ref.at("noise"), ref.at("timesteps"));
  EXPECT_LT(relative_error(noisy, ref.at("noisy_latents")), 1e-6);
  const auto target = schedule.velocity(ref.at("latents"), ref.at("noise"), ref.at("timesteps"));
  EXPECT_LT(relative_error(target, ref.at("target")), 1e-6);

  auto adapters = sdtune::lora::LoraAdapters::attach_from(*unet, sdtune::lora::read_lora(data_path("tiny-sd2/lora")),
                                                          sdtune::lora::Component::UNet);
  const auto names = manifest["lora_param_names"].get<std::vector<std::string>>();
  const auto params = adapters.named_parameters();
  ASSERT_EQ(params.size(), names.size());
  std::map<std::string, torch::Tensor> by_name(params.begin(), params.end());
  for (const auto& name : names) EXPECT_TRUE(torch::equal(by_name.at(name), ref.at("init." + name))) << name;

  const auto prediction = unet->forward(noisy, ref.at("timesteps"), ref.at("encoder_hidden_states"));
  EXPECT_LT(relative_error(prediction.detach(), ref.at("model_pred")), 1e-5);
  const auto loss = torch::mse_loss(prediction.to(torch::kFloat), target.to(torch::kFloat));
  EXPECT_NEAR(loss.item<double>(), ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
  loss.backward();
  for (const auto& name : names) EXPECT_LT(relative_error(by_name.at(name).grad(), ref.at("grad." + name)), 1e-4) << name;

  const double norm = torch::nn::utils::clip_grad_norm_(adapters.parameters(), manifest["max_grad_norm"].get<double>());
  EXPECT_NEAR(norm, manifest["grad_total_norm"].get<double>(), 1e-5);
  const auto o = manifest["optimizer"];
  torch::optim::AdamW adamw(adapters.parameters(), torch::optim::AdamWOptions(o["lr"].get<double>())
                                                       .betas({o["betas"][0].get<double>(), o["betas"][1].get<double>()})
                                                       .weight_decay(o["weight_decay"].get<double>())
                                                       .eps(o["eps"].get<double>()));
  adamw.step();
  for (const auto& name : names) EXPECT_LT(relative_error(by_name.at(name).detach(), ref.at("after_adamw." + name)), 1e-4) << name;

  // Detaching the side paths gives back the base model exactly.
  adapters.detach();
  torch::NoGradGuard no_grad;
  const auto unet_ref = sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/unet.safetensors"));
  EXPECT_LT(relative_error(unet->forward(unet_ref.at("sample"), unet_ref.at("timestep"), unet_ref.at("encoder_hidden_states")), unet_ref.at("out")), 1e-5);
}

TEST(TrainStep, FreshAdaptersStartAsTheBaseModel) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto unet = sdtune::pipeline::load_unet(folder, {});
  const auto unet_ref = sdtune::io::read_all_tensors(data_path("tiny-sd1/ref/unet.safetensors"));
  sdtune::lora::LoraTrainingConfig config;
  auto adapters = sdtune::lora::LoraAdapters::attach_new(*unet, sdtune::lora::Component::UNet, config,
                                                         at::make_generator<at::CPUGeneratorImpl>(42));
  EXPECT_EQ(adapters.size(), 48u);
  for (const auto& [name, t] : adapters.named_parameters()) {
    if (name.find("lora_B") != std::string::npos) EXPECT_EQ(t.abs().sum().item<float>(), 0.f);
    else EXPECT_NEAR(t.std().item<double>(), 1.0 / 4, 0.1);  // A ~ N(0, 1/rank)
  }
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_error(unet->forward(unet_ref.at("sample"), unet_ref.at("timestep"), unet_ref.at("encoder_hidden_states")), unet_ref.at("out")), 1e-5);
}

}  // namespace
