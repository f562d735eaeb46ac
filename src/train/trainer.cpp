#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/model_files.h"
#include "schedulers/noise_schedule.h"
#include "text/prompt_chunks.h"
#include "train/checkpoint.h"
#include "train/loss_plot.h"
#include "train/loss_scaler.h"
#include "train/training_record.h"

namespace fs = std::filesystem;

namespace sdtune::train {

namespace {

Dataset read_checked_dataset(const TrainOptions& o) {
  Dataset dataset = read_dataset(o.data_dir, o.dataset);
  CheckOptions check;
  check.resolution = o.batches.resolution;
  check_dataset(dataset, check);
  if (dataset.has_errors()) {
    std::string report;
    for (const auto& p : dataset.problems)
      if (p.error) report += "\n  " + p.where + ": " + p.problem;
    throw Error(o.data_dir, "the dataset has problems (sdtune dataset check lists them all):" + report);
  }
  if (o.max_train_samples > 0 && int64_t(dataset.items.size()) > o.max_train_samples) dataset.items.resize(size_t(o.max_train_samples));
  return dataset;
}

at::ScalarType weight_dtype(const TrainOptions& o) {
  if (o.mixed_precision == "no") return torch::kFloat;
  if (o.mixed_precision == "bf16") return torch::kBFloat16;
  if (o.mixed_precision == "fp16") {
    if (!o.load.device.is_cuda()) throw Error("--mixed_precision", "fp16 needs --device cuda (on CPU use bf16 or no)");
    return torch::kHalf;
  }
  throw Error("--mixed_precision", "must be no, bf16 or fp16, not " + in_quotes(o.mixed_precision));
}

// Keeps the log lines of steps up to `last_step` (a resumed run rewrites what came after).
void truncate_log(const std::string& path, int64_t last_step) {
  std::istringstream in(io::read_file_if_exists(path, io::kMaxTextFileBytes, "training log"));
  std::string kept, line;
  while (std::getline(in, line)) {
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_object() && json.contains("step") && json["step"].is_number_integer() && json["step"].get<int64_t>() <= last_step)
      kept += line + "\n";
  }
  io::write_file_atomically(path, [&](std::ostream& out) { out << kept; }, io::OntoInput::Allow);  // rewritten on purpose
}

// What must not change between a checkpoint and the run that resumes it.
void check_resumable(const nlohmann::json& saved, const nlohmann::json& now, const std::string& checkpoint) {
  for (const char* key : {"rank", "lora_alpha", "train_batch_size", "gradient_accumulation_steps", "num_examples", "lora_target_modules"})
    if (saved.value(key, nlohmann::json()) != now.value(key, nlohmann::json()))
      throw Error(checkpoint, std::string("was made with ") + key + " = " + saved.value(key, nlohmann::json()).dump() + "; this run has " +
                                  now.value(key, nlohmann::json()).dump() + " (resume needs the same)");
}

// A NaN or infinite loss or gradient norm would poison the LoRA: stop before the optimizer applies
// it, and leave every saved checkpoint as it is.
[[noreturn]] void stop_on_non_finite(const std::string& what, double value, int64_t step, const std::string& output_dir) {
  const auto checkpoints = list_checkpoints(output_dir);
  throw Error(output_dir, "step " + std::to_string(step + 1) + ": the " + what + " is " + std::to_string(value) +
                              "; training stopped before applying it (a learning rate too high, or broken data?). " +
                              (checkpoints.empty() ? std::string("No checkpoint was saved yet")
                                                   : "The last good checkpoint is " + checkpoints.back() + " (--resume_from_checkpoint latest)"));
}

}  // namespace

TrainResult train_lora(const TrainOptions& o, const TrainCallbacks& callbacks) {
  auto say = [&](const std::string& message) {
    if (callbacks.on_message) callbacks.on_message(message);
  };
  if (o.batch_size < 1 || o.gradient_accumulation_steps < 1) throw Error("--train_batch_size", "batch size and accumulation must be >= 1");
  // 8192: four times SDXL's size; larger crops would only allocate without end.
  if (o.batches.resolution < 8 || o.batches.resolution > 8192 || o.batches.resolution % 8 != 0)
    throw Error("--resolution", "must be a multiple of 8 from 8 to 8192");
  if (o.max_train_samples < 0) throw Error("--max_train_samples", "must not be negative");
  if (o.lr.warmup_steps < 0) throw Error("--lr_warmup_steps", "must not be negative");
  if (o.validation_epochs < 1) throw Error("--validation_epochs", "must be at least 1");
  const Dataset dataset = read_checked_dataset(o);

  pipeline::LoadOptions load = o.load;
  load.dtype = weight_dtype(o);
  const io::ModelFiles files(o.model);
  auto model = pipeline::load_stable_diffusion(files, load);
  // A validation prompt the text encoder cannot take fails now, not after the first epoch.
  if (!o.validation.prompt.empty()) text::tokenize_prompt(*model.tokenizer, o.validation.prompt, {}, "--validation_prompt");
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(model.text_encoder.get()), static_cast<torch::nn::Module*>(model.vae.get()),
                               static_cast<torch::nn::Module*>(model.unet.get())})
    for (auto& p : m->parameters()) p.requires_grad_(false);
  model.unet->train();
  model.unet->set_gradient_checkpointing(o.gradient_checkpointing);

  const auto scheduler_config = files.component_config("scheduler");
  const schedulers::ConfigReader reader(scheduler_config, files.component_config_path("scheduler"));
  const auto schedule = schedulers::NoiseSchedule::from_config(reader, 0.0001, 0.02, "linear");  // DDPMScheduler's defaults
  const std::string prediction = o.prediction_type.empty() ? reader.text("prediction_type", "epsilon") : o.prediction_type;
  if (prediction != "epsilon" && prediction != "v_prediction") throw Error("--prediction_type", "must be epsilon or v_prediction");

  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto adapters = lora::LoraAdapters::attach_new(*model.unet, lora::Component::UNet, o.lora, generator);
  const int64_t examples = int64_t(dataset.items.size());
  const int64_t batches_per_epoch = (examples + o.batch_size - 1) / o.batch_size;
  const int64_t updates_per_epoch = (batches_per_epoch + o.gradient_accumulation_steps - 1) / o.gradient_accumulation_steps;
  const int64_t total_steps = o.max_train_steps > 0 ? o.max_train_steps : o.num_epochs * updates_per_epoch;
  const int64_t epochs = (total_steps + updates_per_epoch - 1) / updates_per_epoch;
  LrSchedule lr = o.lr;
  lr.total_steps = total_steps;
  lr.base_lr = o.scale_lr ? o.learning_rate * double(o.gradient_accumulation_steps * o.batch_size) : o.learning_rate;
  lr.validate();
  torch::optim::AdamW optimizer(adapters.parameters(), torch::optim::AdamWOptions(lr.learning_rate(0))
                                                           .betas({o.adam_beta1, o.adam_beta2})
                                                           .weight_decay(o.adam_weight_decay)
                                                           .eps(o.adam_epsilon));
  const auto device = model.unet->parameters().front().device();
  const auto dtype = model.unet->parameters().front().scalar_type();
  const at::Tensor alphas_cumprod = schedule.alphas_cumprod.to(device);
  LossScaler scaler;
  const bool scaling = dtype == torch::kHalf;
  BatchMaker batches(dataset, model, o.batches, dtype);
  const TrainingRecord record = describe_training(o, dataset, model, prediction);

  // Resume: weights, optimizer, generator and the position in the epoch, exactly as saved.
  TrainingPosition position;
  at::Tensor order;
  bool resumed = false;
  fs::create_directories(fs::path(o.output_dir) / "logs");
  const std::string log_path = (fs::path(o.output_dir) / "logs" / "train.jsonl").string();
  if (!o.resume_from_checkpoint.empty()) {
    const std::string path = find_checkpoint(o.output_dir, o.resume_from_checkpoint);
    if (path.empty()) {
      say("Checkpoint 'latest' does not exist in " + o.output_dir + ". Starting a new training run.");
    } else {
      const CheckpointState state = load_checkpoint(path, optimizer);
      check_resumable(state.arguments, record.arguments, path);
      check_checkpoint_fits(state, examples, batches_per_epoch, path);
      adapters.load_weights(lora::read_lora(state.lora_path));
      generator.set_state(state.generator_state);
      position = state.position;
      order = state.epoch_order;
      if (scaling && position.loss_scale > 0) scaler.restore(position.loss_scale, position.scale_growth_tracker);
      resumed = true;
      say("Resuming from checkpoint " + path + " (step " + std::to_string(position.step) + ")");
    }
  }
  truncate_log(log_path, resumed ? position.step : -1);
  std::ofstream log(log_path, std::ios::app);

  if (o.batches.cache) {
    say("Caching latents and text embeddings of " + std::to_string(examples) + " examples");
    batches.fill_cache();
  }
  if (callbacks.on_start) callbacks.on_start({examples, epochs, o.batch_size, o.gradient_accumulation_steps, total_steps, position.step});

  const auto start = std::chrono::steady_clock::now() - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double>(position.seconds));
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  TrainResult result;
  auto save = [&](int64_t step, int64_t epoch, int64_t next_batch) {
    CheckpointState state;
    state.position = {step, epoch, next_batch, elapsed(), scaling ? scaler.scale() : 0.0, scaler.growth_tracker()};
    state.generator_state = generator.get_state();
    state.epoch_order = order;
    state.arguments = record.arguments;
    // The checkpoint's LoRA carries the same metadata as the final one: `publish --checkpoint N` reads it.
    auto weights = adapters.to_file("checkpoint");
    weights.metadata = lora_metadata(record, step, state.position.seconds);
    result.last_checkpoint = save_checkpoint(o.output_dir, state, weights, optimizer);
    say("Saved state to " + result.last_checkpoint);
    for (const auto& removed : prune_checkpoints(o.output_dir, o.checkpoints_total_limit)) say("Removed " + removed);
  };
  int64_t last_validated = -1;
  auto validate = [&](int64_t step, int64_t epoch) {
    say("Running validation... Generating " + std::to_string(o.validation.num_images) + " images with prompt: " + o.validation.prompt);
    ValidationOptions v = o.validation;
    v.lora_name = fs::path(o.output_dir).filename().string();
    for (const auto& path : write_validation_images(model, scheduler_config, v, step, epoch, o.output_dir)) say("wrote " + path);
    last_validated = step;
  };
  auto stop_requested = [&] { return callbacks.stop_requested && callbacks.stop_requested(); };

  int64_t step = position.step, micro = 0;
  for (int64_t epoch = position.epoch; epoch < epochs && step < total_steps && !result.interrupted; ++epoch) {
    const bool continuing = resumed && epoch == position.epoch;
    if (!continuing) order = at::randperm(examples, generator, torch::kLong);
    for (int64_t b = continuing ? position.next_batch : 0; b < batches_per_epoch && step < total_steps; ++b) {
      std::vector<int64_t> indices;
      for (int64_t k = b * o.batch_size; k < std::min((b + 1) * o.batch_size, examples); ++k) indices.push_back(order[k].item<int64_t>());
      const Batch batch = batches.make(indices, generator);
      const int64_t n = int64_t(indices.size());
      at::Tensor noise = at::randn(batch.latents.sizes(), generator, torch::kFloat).to(device).to(dtype);
      if (o.noise_offset > 0)
        noise = noise + o.noise_offset * at::randn({n, batch.latents.size(1), 1, 1}, generator, torch::kFloat).to(device).to(dtype);
      const at::Tensor timesteps = at::randint(schedule.num_train_timesteps, {n}, generator, torch::kLong).to(device);
      const at::Tensor noisy = schedule.add_noise(batch.latents, noise, timesteps);
      const at::Tensor target = (prediction == "epsilon" ? noise : schedule.velocity(batch.latents, noise, timesteps)).to(torch::kFloat);
      const at::Tensor pred = model.unet->forward(noisy, timesteps, batch.context).to(torch::kFloat);
      at::Tensor loss;
      if (o.snr_gamma > 0) {  // Min-SNR weighting (Hang et al. 2023), as the script computes it
        const at::Tensor a = alphas_cumprod.index_select(0, timesteps);
        const at::Tensor snr = a / (1 - a);
        const at::Tensor clipped = torch::clamp_max(snr, o.snr_gamma);
        const at::Tensor weights = prediction == "epsilon" ? clipped / snr : clipped / (snr + 1);
        loss = (torch::mse_loss(pred, target, at::Reduction::None).mean({1, 2, 3}) * weights).mean();
      } else {
        loss = torch::mse_loss(pred, target);
      }
      (loss * ((scaling ? scaler.scale() : 1.0) / double(o.gradient_accumulation_steps))).backward();
      if (++micro % o.gradient_accumulation_steps != 0 && b + 1 < batches_per_epoch) continue;
      // One read of the loss per step (on CUDA it waits for the GPU); a NaN in an earlier micro-batch
      // shows in the gradient norm. Under fp16 loss scaling an overflow is expected now and then: the
      // scaler skips that step instead.
      const double step_loss = loss.item<double>();
      if (!scaling && !std::isfinite(step_loss)) stop_on_non_finite("loss", step_loss, step, o.output_dir);
      const bool finite = !scaling || scaler.unscale(adapters.parameters());
      const double current_lr = lr.learning_rate(step);
      if (finite) {
        const double norm = torch::nn::utils::clip_grad_norm_(adapters.parameters(), o.max_grad_norm);
        if (!std::isfinite(norm)) stop_on_non_finite("gradient norm", norm, step, o.output_dir);
        for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(current_lr);
        optimizer.step();
      }
      if (scaling) scaler.update(finite);
      optimizer.zero_grad();
      micro = 0;
      ++step;
      const StepReport report{step, total_steps, epoch, step_loss, current_lr};
      log << nlohmann::json{{"step", step}, {"epoch", epoch}, {"loss", report.loss}, {"lr", current_lr}, {"seconds", elapsed()}}.dump() << "\n";
      log.flush();
      if (callbacks.on_step) callbacks.on_step(report);
      result.interrupted = stop_requested();
      if (result.interrupted || (o.checkpointing_steps > 0 && step % o.checkpointing_steps == 0)) save(step, epoch, b + 1);
      if (result.interrupted) break;
    }
    if (!result.interrupted && !o.validation.prompt.empty() && epoch % o.validation_epochs == 0) {
      validate(step, epoch);
      result.interrupted = stop_requested();
      if (result.interrupted) save(step, epoch, batches_per_epoch);
    }
  }
  result.steps = step;
  log.close();
  const auto points = read_loss_log(log_path);
  if (!points.empty()) write_loss_plot(points, (fs::path(o.output_dir) / "logs" / "loss.svg").string());
  if (result.interrupted) return result;

  if (!o.validation.prompt.empty() && last_validated != step) validate(step, epochs - 1);
  result.lora_path = (fs::path(o.output_dir) / "pytorch_lora_weights.safetensors").string();
  auto file = adapters.to_file(result.lora_path);
  file.metadata = lora_metadata(record, step, elapsed());
  lora::write_lora(file, result.lora_path, lora::LoraFormat::Diffusers);
  if (o.save_kohya)
    lora::write_lora(file, (fs::path(o.output_dir) / "pytorch_lora_weights_kohya.safetensors").string(), lora::LoraFormat::Kohya);
  return result;
}

}  // namespace sdtune::train
