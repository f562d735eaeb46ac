// The training loop: loss goes down, checkpoints resume bit-exactly, samples, plot, metadata, and the
// memory/precision options give the same training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/image_file.h"
#include "io/json_file.h"
#include "io/model_files.h"
#include "io/png.h"
#include "io/tensor_io.h"
#include "lora/lora_merge.h"
#include "schedulers/noise_schedule.h"
#include "synthetic_dataset.h"
#include "torch_test_util.h"
#include "train/checkpoint.h"
#include "train/loss_plot.h"
#include "train/loss_scaler.h"
#include "train/trainer.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;
namespace fs = std::filesystem;

namespace {

// Mean noise-prediction loss over the dataset at fixed noise and timesteps (seeded), centre crops.
double evaluation_loss(const std::string& model_dir, const std::string& data_dir, const std::string& lora_path) {
  torch::NoGradGuard no_grad;
  sdtune::io::ModelFiles folder(model_dir);
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

sdtune::train::TrainOptions small_run(const sdtune::test::TempDir& data, const std::string& output_dir) {
  sdtune::train::TrainOptions o;
  o.model.model = data_path("tiny-sd1/pipeline");
  o.model_name = "tiny-sd1";
  o.data_dir = data.path.string();
  o.batches.resolution = 32;
  o.batches.random_flip = true;
  o.batch_size = 2;
  o.learning_rate = 1e-3;
  o.lr.kind = "cosine";
  o.lr.warmup_steps = 2;
  o.seed = 42;
  o.output_dir = output_dir;
  return o;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Training, TwoHundredStepsLowerTheEvaluationLoss) {
  sdtune::test::TempDir data, out;
  sdtune::test::make_dataset(data);
  auto o = small_run(data, out.path.string());
  o.max_train_steps = 200;
  o.lr.kind = "constant";
  o.save_kohya = true;
  o.checkpointing_steps = 0;
  int64_t reported = 0;
  sdtune::train::TrainCallbacks callbacks;
  callbacks.on_step = [&](const sdtune::train::StepReport& r) { reported = r.step; };
  const auto result = sdtune::train::train_lora(o, callbacks);
  EXPECT_EQ(result.steps, 200);
  EXPECT_EQ(reported, 200);
  const double before = evaluation_loss(o.model.model, o.data_dir, "");
  const double after = evaluation_loss(o.model.model, o.data_dir, result.lora_path);
  EXPECT_LT(after, 0.9 * before) << "before " << before << " after " << after;
  std::cout << "evaluation loss before " << before << ", after 200 steps " << after << "\n";
  // A diffusers LoRA with the training metadata, kohya's keys included.
  const auto file = sdtune::lora::read_lora(result.lora_path);
  EXPECT_EQ(file.format, "diffusers");
  EXPECT_EQ(file.metadata.at("ss_steps"), "200");
  EXPECT_EQ(file.metadata.at("ss_network_dim"), "4");
  EXPECT_EQ(file.metadata.at("ss_base_model_version"), "sd_v1");
  EXPECT_EQ(file.metadata.at("ss_resolution"), "(32, 32)");
  EXPECT_EQ(file.metadata.at("sdtune_trigger_word"), "(lora-misato-token)");
  EXPECT_EQ(file.metadata.at("sdtune_dataset_hash").size(), 16u);
  const auto tags = sdtune::io::parse_json_text(file.metadata.at("ss_tag_frequency"), "ss_tag_frequency");
  EXPECT_EQ(tags.begin().value()["(lora-misato-token) picture 3"], 1);
  EXPECT_EQ(sdtune::lora::read_lora(out.file("pytorch_lora_weights_kohya.safetensors")).format, "kohya");
  const auto log = read_lines(out.file("logs/train.jsonl"));
  ASSERT_EQ(log.size(), 200u);
  EXPECT_EQ(sdtune::io::parse_json_text(log.back(), "train.jsonl")["step"], 200);
  std::ifstream svg(out.file("logs/loss.svg"));
  const std::string plot((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_EQ(plot.rfind("<svg", 0), 0u);
  EXPECT_NE(plot.find("training loss (200 steps)"), std::string::npos);
}

TEST(Training, InterruptedAndResumedEqualsUninterrupted) {
  sdtune::test::TempDir data, whole, pieces;
  sdtune::test::make_dataset(data, 7);  // 4 batches per epoch, the last one short
  auto o = small_run(data, whole.path.string());
  o.max_train_steps = 11;
  o.checkpointing_steps = 3;
  o.checkpoints_total_limit = 2;
  o.gradient_accumulation_steps = 1;
  o.lora.alpha = 3;  // rank 4: files fold 3/4 into the up weights, which only the resume copy keeps apart
  const auto uninterrupted = sdtune::train::train_lora(o);
  EXPECT_EQ(sdtune::train::list_checkpoints(whole.path.string()),
            (std::vector<std::string>{whole.file("checkpoint-6"), whole.file("checkpoint-9")}));

  // Stopped (as by Ctrl-C) in the middle of the second epoch, then resumed twice.
  o.output_dir = pieces.path.string();
  sdtune::train::TrainCallbacks stop_at_5;
  int64_t last = 0;
  stop_at_5.on_step = [&](const sdtune::train::StepReport& r) { last = r.step; };
  stop_at_5.stop_requested = [&] { return last == 5; };
  const auto first = sdtune::train::train_lora(o, stop_at_5);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 5);
  EXPECT_EQ(first.last_checkpoint, pieces.file("checkpoint-5"));
  EXPECT_FALSE(fs::exists(pieces.file("pytorch_lora_weights.safetensors")));
  o.resume_from_checkpoint = "latest";
  sdtune::train::TrainCallbacks stop_at_8 = stop_at_5;
  stop_at_8.stop_requested = [&] { return last == 8; };
  EXPECT_EQ(sdtune::train::train_lora(o, stop_at_8).steps, 8);
  // Resuming from an older checkpoint (by name) also works and rewrites the later log lines.
  o.resume_from_checkpoint = "checkpoint-6";
  const auto resumed = sdtune::train::train_lora(o);
  EXPECT_EQ(resumed.steps, 11);

  const auto a = sdtune::io::read_all_tensors(uninterrupted.lora_path);
  const auto b = sdtune::io::read_all_tensors(resumed.lora_path);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  const auto log_a = read_lines(whole.file("logs/train.jsonl")), log_b = read_lines(pieces.file("logs/train.jsonl"));
  ASSERT_EQ(log_b.size(), 11u);
  for (size_t i = 0; i < log_a.size(); ++i) {
    const auto x = sdtune::io::parse_json_text(log_a[i], "a"), y = sdtune::io::parse_json_text(log_b[i], "b");
    EXPECT_EQ(x["step"], y["step"]);
    EXPECT_EQ(x["loss"], y["loss"]) << "step " << x["step"];
    EXPECT_EQ(x["lr"], y["lr"]);
  }
  // The checkpoint's LoRA loads as a LoRA and its state names the step.
  const auto checkpoint_lora = sdtune::lora::read_lora(pieces.file("checkpoint-9"));
  EXPECT_EQ(checkpoint_lora.format, "diffusers");
  EXPECT_EQ(checkpoint_lora.metadata.at("ss_steps"), "9");  // publish --checkpoint reads the training record
  EXPECT_EQ(checkpoint_lora.metadata.at("sdtune_base_model"), "tiny-sd1");
  EXPECT_EQ(*checkpoint_lora.modules[0].alpha, 4.0);
  const auto as_trained = sdtune::lora::read_lora(pieces.file("checkpoint-9/training_lora_weights.safetensors"));
  EXPECT_EQ(*as_trained.modules[0].alpha, 3.0);
  EXPECT_TRUE(torch::equal(as_trained.modules[0].up * 0.75, checkpoint_lora.modules[0].up));
  EXPECT_EQ(sdtune::io::read_json_file(pieces.file("checkpoint-9/state.json"))["position"]["step"], 9);
}

TEST(Training, ResumeRefusesAnotherSetupAndBrokenCheckpoints) {
  sdtune::test::TempDir data, out;
  sdtune::test::make_dataset(data, 4);
  auto o = small_run(data, out.path.string());
  o.max_train_steps = 2;
  o.checkpointing_steps = 2;
  sdtune::train::train_lora(o);
  o.resume_from_checkpoint = "latest";
  o.lora.rank = 8;
  o.lora.alpha = 8;
  try {
    sdtune::train::train_lora(o);
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
  }
  o.lora.rank = 4;
  o.lora.alpha = 4;
  std::ofstream(out.file("checkpoint-2/optimizer.pt"), std::ios::trunc) << "not an archive";
  try {
    sdtune::train::train_lora(o);
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.pt"), std::string::npos) << e.what();
  }
  o.resume_from_checkpoint = "checkpoint-77";
  EXPECT_THROW(sdtune::train::train_lora(o), sdtune::Error);
}

TEST(Training, ValidationSamplesCachedLatentsAndBf16) {
  sdtune::test::TempDir data, out;
  sdtune::test::make_dataset(data, 4);
  auto o = small_run(data, out.path.string());
  o.num_epochs = 2;  // 2 steps per epoch
  o.checkpointing_steps = 0;
  o.batches.center_crop = true;
  o.batches.cache = true;
  o.mixed_precision = "bf16";
  o.validation.prompt = "(lora-misato-token) picture";
  o.validation.num_images = 2;
  o.validation.steps = 2;
  o.validation.size = 32;
  o.validation.seed = 5;
  o.validation_epochs = 1;
  const auto result = sdtune::train::train_lora(o);
  EXPECT_EQ(result.steps, 4);
  for (const char* name : {"step-2-0.png", "step-2-1.png", "step-4-0.png", "step-4-1.png"}) {
    const auto text = sdtune::io::read_png_text(out.file(std::string("samples/") + name));
    const std::string tag = "<lora:" + out.path.filename().string() + ":1>";  // the LoRA being trained, as A1111 would name it
    EXPECT_NE(text.at("parameters").find("(lora-misato-token) picture " + tag + "\nSteps: 2"), std::string::npos) << text.at("parameters");
  }
  const auto samples = read_lines(out.file("samples/samples.jsonl"));
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(sdtune::io::parse_json_text(samples[3], "samples.jsonl")["file"], "step-4-1.png");
  const auto log = read_lines(out.file("logs/train.jsonl"));
  ASSERT_EQ(log.size(), 4u);
  for (const auto& line : log) EXPECT_TRUE(std::isfinite(sdtune::io::parse_json_text(line, "log")["loss"].get<double>()));
  // LoRA weights stay fp32 under bf16.
  for (const auto& [name, t] : sdtune::io::read_all_tensors(result.lora_path)) EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;

  o.batches.center_crop = false;
  EXPECT_THROW(sdtune::train::train_lora(o), sdtune::Error);  // a cached random crop would be frozen
}

TEST(Training, GradientCheckpointingGivesTheSameGradients) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  auto unet = sdtune::pipeline::load_unet(folder, {});
  for (auto& p : unet->parameters()) p.requires_grad_(false);
  auto adapters = sdtune::lora::LoraAdapters::attach_new(*unet, sdtune::lora::Component::UNet, {},
                                                         at::make_generator<at::CPUGeneratorImpl>(3));
  {
    torch::NoGradGuard no_grad;  // non-zero B so that every gradient is non-trivial
    for (auto& [name, t] : adapters.named_parameters()) t.normal_(0, 0.1);
  }
  const auto ref = sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/unet.safetensors"));
  auto gradients = [&](bool checkpointing) {
    unet->set_gradient_checkpointing(checkpointing);
    for (auto& t : adapters.parameters()) t.mutable_grad() = torch::Tensor();
    const auto out = unet->forward(ref.at("sample"), ref.at("timestep"), ref.at("encoder_hidden_states"));
    out.pow(2).mean().backward();
    std::vector<torch::Tensor> grads;
    for (auto& t : adapters.parameters()) grads.push_back(t.grad().clone());
    return std::make_pair(out.detach(), grads);
  };
  const auto plain = gradients(false);
  const auto checkpointed = gradients(true);
  EXPECT_TRUE(torch::equal(plain.first, checkpointed.first));
  ASSERT_EQ(plain.second.size(), checkpointed.second.size());
  for (size_t i = 0; i < plain.second.size(); ++i) {
    ASSERT_TRUE(checkpointed.second[i].defined()) << i;
    EXPECT_LT(relative_error(checkpointed.second[i], plain.second[i]), 1e-6) << i;
  }
}

TEST(Training, LossScalerSkipsOverflowAndGrows) {
  sdtune::train::LossScaler scaler(1024.0, 2);
  auto p = torch::zeros({2}, torch::requires_grad());
  p.mutable_grad() = torch::tensor({2048.0f, 1024.0f});
  EXPECT_TRUE(scaler.unscale({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::tensor({2.0f, 1.0f})));
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.scale(), 2048.0);  // two good steps in a row
  p.mutable_grad() = torch::tensor({INFINITY, 1.0f});
  EXPECT_FALSE(scaler.unscale({p}));
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(Training, LossPlotReadsTheLog) {
  sdtune::test::TempDir dir;
  std::ofstream(dir.file("train.jsonl")) << "{\"step\": 1, \"loss\": 0.5}\n{\"step\": 2, \"loss\": 0.25}\n{torn";
  const auto points = sdtune::train::read_loss_log(dir.file("train.jsonl"));
  ASSERT_EQ(points.size(), 2u);
  sdtune::train::write_loss_plot(points, dir.file("loss.svg"));
  EXPECT_TRUE(fs::file_size(dir.file("loss.svg")) > 500);
}

TEST(Training, BadDatasetStopsWithTheReport) {
  sdtune::test::TempDir data, out;
  std::ofstream(data.file("metadata.jsonl")) << "{\"file_name\": \"missing.png\", \"text\": \"x\"}\n{broken\n";
  sdtune::train::TrainOptions o;
  o.model.model = data_path("tiny-sd1/pipeline");
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
