// One LoRA training step of diffusers' train_text_to_image_lora.py, reproduced from its pieces:
// forward process, v-prediction target, UNet with LoRA side paths, MSE, gradients, AdamW.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

#include "core/error.h"
#include "io/image_file.h"
#include "io/json_file.h"
#include "io/model_folder.h"
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
  sdtune::io::ModelFolder folder(data_path("tiny-sd2/pipeline"));
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
  sdtune::io::ModelFolder folder(data_path("tiny-sd1/pipeline"));
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

#include <ATen/CPUGeneratorImpl.h>

#include "io/png.h"
#include "lora/lora_merge.h"
#include "train/trainer.h"

namespace {

// 8 synthetic images (colour gradients) with captions, in diffusers' imagefolder layout.
void make_dataset(const sdtune::test::TempDir& dir) {
  std::ofstream metadata(dir.file("metadata.jsonl"));
  for (int i = 0; i < 8; ++i) {
    sdtune::io::RgbImage image{48, 40, std::vector<uint8_t>(48 * 40 * 3)};
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 48; ++x) {
        uint8_t* p = &image.pixels[size_t((y * 48 + x) * 3)];
        p[0] = uint8_t((x * 5 + i * 30) % 256), p[1] = uint8_t((y * 6) % 256), p[2] = uint8_t(i * 31 % 256);
      }
    sdtune::io::write_png(dir.file("img" + std::to_string(i) + ".png"), image);
    metadata << "{\"file_name\": \"img" << i << ".png\", \"text\": \"(lora-misato-token) picture " << i << "\"}\n";
  }
}

// Mean noise-prediction loss over the dataset at fixed noise and timesteps (seeded), centre crops.
double evaluation_loss(const std::string& model_dir, const std::string& data_dir, const std::string& lora_path) {
  torch::NoGradGuard no_grad;
  sdtune::io::ModelFolder folder(model_dir);
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
  if (!lora_path.empty()) merger.merge(sdtune::lora::read_lora(lora_path), 1.0);
  const auto dataset = sdtune::train::read_dataset(data_dir, {});
  const sdtune::schedulers::ConfigReader reader(folder.component_config("scheduler"), "scheduler");
  const auto schedule = sdtune::schedulers::NoiseSchedule::from_config(reader, 0.0001, 0.02, "linear");
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(1234);
  double total = 0;
  for (const auto& item : dataset.items) {
    const auto pixels = sdtune::train::train_transform(sdtune::io::read_image(item.image_path), 32, sdtune::train::Interpolation::Lanczos,
                                                       true, false, generator).unsqueeze(0);
    const auto latents = model.vae->encode(pixels).mean * model.vae->config().scaling_factor;
    const auto ids = model.tokenizer->encode_padded(item.captions[0]);
    const auto context = model.text_encoder->forward(torch::tensor(ids).view({1, -1}));
    for (int k = 0; k < 4; ++k) {
      const auto noise = at::randn(latents.sizes(), generator, torch::kFloat);
      const auto t = at::randint(1000, {1}, generator, torch::kLong);
      total += torch::mse_loss(model.unet->forward(schedule.add_noise(latents, noise, t), t, context), noise).item<double>();
    }
  }
  return total / double(dataset.items.size() * 4);
}

TEST(Training, TwoHundredStepsLowerTheEvaluationLoss) {
  sdtune::test::TempDir data, out;
  make_dataset(data);
  sdtune::train::TrainOptions o;
  o.model_dir = data_path("tiny-sd1/pipeline");
  o.model_name = "tiny-sd1";
  o.data_dir = data.path.string();
  o.resolution = 32;
  o.random_flip = true;
  o.batch_size = 2;
  o.max_train_steps = 200;
  o.learning_rate = 1e-3;
  o.lr_scheduler = "constant";
  o.seed = 42;
  o.output_dir = out.path.string();
  o.save_kohya = true;
  int64_t reported = 0;
  const auto result = sdtune::train::train_lora(o, nullptr, [&](const sdtune::train::StepReport& r) { reported = r.step; });
  EXPECT_EQ(result.steps, 200);
  EXPECT_EQ(reported, 200);
  const double before = evaluation_loss(o.model_dir, o.data_dir, "");
  const double after = evaluation_loss(o.model_dir, o.data_dir, result.lora_path);
  EXPECT_LT(after, 0.9 * before) << "before " << before << " after " << after;
  std::cout << "evaluation loss before " << before << ", after 200 steps " << after << "\n";
  // The file is a diffusers LoRA with training metadata.
  const auto file = sdtune::lora::read_lora(result.lora_path);
  EXPECT_EQ(file.format, "diffusers");
  EXPECT_EQ(file.metadata.at("ss_steps"), "200");
  EXPECT_EQ(sdtune::lora::read_lora(out.file("pytorch_lora_weights_kohya.safetensors")).format, "kohya");
  std::ifstream log(out.file("logs/train.jsonl"));
  std::string line, last;
  int lines = 0;
  while (std::getline(log, line)) ++lines, last = line;
  EXPECT_EQ(lines, 200);
  EXPECT_EQ(sdtune::io::parse_json_text(last, "train.jsonl")["step"], 200);
}

TEST(Training, BadDatasetStopsWithTheReport) {
  sdtune::test::TempDir data, out;
  std::ofstream(data.file("metadata.jsonl")) << "{\"file_name\": \"missing.png\", \"text\": \"x\"}\n{broken\n";
  sdtune::train::TrainOptions o;
  o.model_dir = data_path("tiny-sd1/pipeline");
  o.data_dir = data.path.string();
  o.output_dir = out.file("o");
  try {
    sdtune::train::train_lora(o);
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 1: missing image"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 2: broken JSON"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out.file("o")));
}

}  // namespace
