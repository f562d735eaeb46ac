#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <filesystem>

#include "core/error.h"
#include "io/image_file.h"
#include "io/model_folder.h"
#include "schedulers/noise_schedule.h"

namespace fs = std::filesystem;

namespace sdtune::train {

namespace {

int64_t random_below(int64_t n, at::Generator& generator) {
  return n <= 1 ? 0 : at::randint(n, {1}, generator, torch::kLong).item<int64_t>();
}

}  // namespace

at::Tensor train_transform(const io::RgbImage& image, int64_t resolution, Interpolation mode, bool center_crop, bool random_flip,
                           at::Generator& generator) {
  // torchvision Resize(int): the shorter side becomes `resolution`, the longer keeps the aspect.
  const bool wide = image.width >= image.height;
  const int64_t width = wide ? int64_t(double(resolution) * double(image.width) / double(image.height)) : resolution;
  const int64_t height = wide ? resolution : int64_t(double(resolution) * double(image.height) / double(image.width));
  const FloatImage resized = resize(image, width, height, mode);
  const at::Tensor hwc = torch::from_blob(const_cast<float*>(resized.pixels.data()), {height, width, 3}, torch::kFloat);
  const int64_t top = center_crop ? int64_t(std::round(double(height - resolution) / 2.0)) : random_below(height - resolution + 1, generator);
  const int64_t left = center_crop ? int64_t(std::round(double(width - resolution) / 2.0)) : random_below(width - resolution + 1, generator);
  at::Tensor chw = hwc.slice(0, top, top + resolution).slice(1, left, left + resolution).permute({2, 0, 1}).clone();
  if (random_flip && at::rand({1}, generator).item<float>() < 0.5f) chw = chw.flip({2});
  return chw / 127.5 - 1.0;
}

TrainResult train_lora(const TrainOptions& o, const std::function<void(const TrainPlan&)>& on_start,
                       const std::function<void(const StepReport&)>& on_step) {
  Dataset dataset = read_dataset(o.data_dir, o.dataset);
  CheckOptions check;
  check.resolution = o.resolution;
  check_dataset(dataset, check);
  if (dataset.has_errors()) {
    std::string report;
    for (const auto& p : dataset.problems)
      if (p.error) report += "\n  " + p.where + ": " + p.problem;
    throw Error(o.data_dir, "the dataset has problems (sdtune dataset check lists them all):" + report);
  }
  if (o.max_train_samples > 0 && int64_t(dataset.items.size()) > o.max_train_samples) dataset.items.resize(size_t(o.max_train_samples));
  if (o.batch_size < 1 || o.gradient_accumulation_steps < 1) throw Error("--train_batch_size", "batch size and accumulation must be >= 1");
  if (o.resolution < 8 || o.resolution % 8 != 0) throw Error("--resolution", "must be a positive multiple of 8");

  const io::ModelFolder folder(o.model_dir);
  auto tokenizer = pipeline::load_tokenizer(folder);
  auto text_encoder = pipeline::load_text_encoder(folder, o.load);
  auto vae = pipeline::load_vae(folder, o.load);
  auto unet = pipeline::load_unet(folder, o.load);
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(text_encoder.get()), static_cast<torch::nn::Module*>(vae.get()),
                               static_cast<torch::nn::Module*>(unet.get())})
    for (auto& p : m->parameters()) p.requires_grad_(false);
  unet->train();

  const auto scheduler_config = folder.component_config("scheduler");
  const schedulers::ConfigReader reader(scheduler_config, folder.component_config_path("scheduler"));
  const auto schedule = schedulers::NoiseSchedule::from_config(reader, 0.0001, 0.02, "linear");  // DDPMScheduler's defaults
  const std::string prediction = o.prediction_type.empty() ? reader.text("prediction_type", "epsilon") : o.prediction_type;
  if (prediction != "epsilon" && prediction != "v_prediction") throw Error("--prediction_type", "must be epsilon or v_prediction");

  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto adapters = lora::LoraAdapters::attach_new(*unet, lora::Component::UNet, o.lora, generator);
  const int64_t batches_per_epoch = (int64_t(dataset.items.size()) + o.batch_size - 1) / o.batch_size;
  const int64_t updates_per_epoch = (batches_per_epoch + o.gradient_accumulation_steps - 1) / o.gradient_accumulation_steps;
  const int64_t total_steps = o.max_train_steps > 0 ? o.max_train_steps : o.num_epochs * updates_per_epoch;
  const int64_t epochs = (total_steps + updates_per_epoch - 1) / updates_per_epoch;
  LrSchedule lr;
  lr.kind = o.lr_scheduler;
  lr.warmup_steps = o.lr_warmup_steps;
  lr.total_steps = total_steps;
  lr.base_lr = o.scale_lr ? o.learning_rate * double(o.gradient_accumulation_steps * o.batch_size) : o.learning_rate;
  lr.validate();
  torch::optim::AdamW optimizer(adapters.parameters(), torch::optim::AdamWOptions(lr.learning_rate(0))
                                                           .betas({o.adam_beta1, o.adam_beta2})
                                                           .weight_decay(o.adam_weight_decay)
                                                           .eps(o.adam_epsilon));
  const auto device = unet->parameters().front().device();
  const auto dtype = unet->parameters().front().scalar_type();
  const at::Tensor alphas_cumprod = schedule.alphas_cumprod.to(device);

  fs::create_directories(fs::path(o.output_dir) / "logs");
  std::ofstream log(fs::path(o.output_dir) / "logs" / "train.jsonl", std::ios::trunc);
  const auto start = std::chrono::steady_clock::now();
  if (on_start) on_start({int64_t(dataset.items.size()), epochs, o.batch_size, o.gradient_accumulation_steps, total_steps});
  int64_t step = 0, micro = 0;
  for (int64_t epoch = 0; epoch < epochs && step < total_steps; ++epoch) {
    const at::Tensor order = at::randperm(int64_t(dataset.items.size()), generator, torch::kLong);
    for (int64_t b = 0; b < batches_per_epoch && step < total_steps; ++b) {
      std::vector<at::Tensor> pixels;
      std::vector<int64_t> ids;
      for (int64_t k = b * o.batch_size; k < std::min<int64_t>((b + 1) * o.batch_size, order.size(0)); ++k) {
        const auto& item = dataset.items[size_t(order[k].item<int64_t>())];
        pixels.push_back(train_transform(io::read_image(item.image_path), o.resolution, o.interpolation, o.center_crop, o.random_flip, generator));
        const auto& caption = item.captions[size_t(random_below(int64_t(item.captions.size()), generator))];
        const auto caption_ids = tokenizer->encode_padded(caption);  // diffusers: truncation, max_length padding
        ids.insert(ids.end(), caption_ids.begin(), caption_ids.end());
      }
      const int64_t n = int64_t(pixels.size());
      at::Tensor latents, context;
      {
        torch::NoGradGuard no_grad;
        latents = vae->encode(torch::stack(pixels).to(device).to(dtype)).sample(generator) * vae->config().scaling_factor;
        context = text_encoder->forward(torch::tensor(ids).view({n, -1}).to(device));
      }
      at::Tensor noise = at::randn(latents.sizes(), generator, torch::kFloat).to(device).to(dtype);
      if (o.noise_offset > 0)
        noise = noise + o.noise_offset * at::randn({n, latents.size(1), 1, 1}, generator, torch::kFloat).to(device).to(dtype);
      const at::Tensor timesteps = at::randint(schedule.num_train_timesteps, {n}, generator, torch::kLong).to(device);
      const at::Tensor noisy = schedule.add_noise(latents, noise, timesteps);
      const at::Tensor target = prediction == "epsilon" ? noise : schedule.velocity(latents, noise, timesteps);
      const at::Tensor pred = unet->forward(noisy, timesteps, context).to(torch::kFloat);
      at::Tensor loss;
      if (o.snr_gamma > 0) {  // Min-SNR weighting (Hang et al. 2023), as the script computes it
        const at::Tensor a = alphas_cumprod.index_select(0, timesteps);
        const at::Tensor snr = a / (1 - a);
        const at::Tensor clipped = torch::clamp_max(snr, o.snr_gamma);
        const at::Tensor weights = prediction == "epsilon" ? clipped / snr : clipped / (snr + 1);
        loss = (torch::mse_loss(pred, target.to(torch::kFloat), at::Reduction::None).mean({1, 2, 3}) * weights).mean();
      } else {
        loss = torch::mse_loss(pred, target.to(torch::kFloat));
      }
      (loss / double(o.gradient_accumulation_steps)).backward();
      if (++micro % o.gradient_accumulation_steps != 0 && b + 1 < batches_per_epoch) continue;
      torch::nn::utils::clip_grad_norm_(adapters.parameters(), o.max_grad_norm);
      const double current_lr = lr.learning_rate(step);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(current_lr);
      optimizer.step();
      optimizer.zero_grad();
      micro = 0;
      ++step;
      const StepReport report{step, total_steps, epoch, loss.item<double>(), current_lr};
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      log << nlohmann::json{{"step", step}, {"epoch", epoch}, {"loss", report.loss}, {"lr", current_lr}, {"seconds", seconds}}.dump() << "\n";
      log.flush();
      if (on_step) on_step(report);
    }
  }

  TrainResult result;
  result.steps = step;
  result.lora_path = (fs::path(o.output_dir) / "pytorch_lora_weights.safetensors").string();
  auto file = adapters.to_file(result.lora_path);
  file.metadata = {{"sdtune_base_model", o.model_name},
                   {"sdtune_rank", std::to_string(o.lora.rank)},
                   {"sdtune_alpha", std::to_string(o.lora.alpha)},
                   {"sdtune_resolution", std::to_string(o.resolution)},
                   {"sdtune_steps", std::to_string(step)},
                   {"sdtune_learning_rate", std::to_string(o.learning_rate)},
                   {"sdtune_seed", std::to_string(o.seed)},
                   {"ss_network_dim", std::to_string(o.lora.rank)},
                   {"ss_network_alpha", std::to_string(o.lora.alpha)},
                   {"ss_resolution", std::to_string(o.resolution)},
                   {"ss_steps", std::to_string(step)}};
  lora::write_lora(file, result.lora_path, lora::LoraFormat::Diffusers);
  if (o.save_kohya)
    lora::write_lora(file, (fs::path(o.output_dir) / "pytorch_lora_weights_kohya.safetensors").string(), lora::LoraFormat::Kohya);
  return result;
}

}  // namespace sdtune::train
