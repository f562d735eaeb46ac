// sdtune train: LoRA fine-tuning with the flags of diffusers' train_text_to_image_lora.py.
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/model_source.h"
#include "train/trainer.h"

namespace sdtune::cli {

namespace {

struct TrainFlags {
  ModelFlags model;
  DeviceFlags device;
  train::TrainOptions options;
  std::string interpolation = "lanczos";
  c10::optional<double> lora_alpha;
  std::string dataset_name;
};

volatile std::sig_atomic_t interrupt_requested = 0;

// First Ctrl-C: finish the step, checkpoint, exit. A second one kills as usual.
void on_interrupt(int) {
  interrupt_requested = 1;
  std::signal(SIGINT, SIG_DFL);
  const char message[] = "\ninterrupt: finishing the current step, then saving a checkpoint (Ctrl-C again to kill)\n";
  (void)!::write(STDERR_FILENO, message, sizeof message - 1);
}

std::string format_number(double v, int precision = 6) {
  std::ostringstream s;
  s.precision(precision);
  s << v;
  return s.str();
}

void run(TrainFlags& f) {
  auto& o = f.options;
  if (o.data_dir.empty() == f.dataset_name.empty())
    throw Error("--train_data_dir", "give either --train_data_dir or --dataset_name (an image folder or a Hub dataset in the local cache)");
  if (!f.dataset_name.empty()) o.data_dir = train::locate_image_folder(io::resolve_dataset_dir(f.dataset_name));
  o.model = f.model.spec;
  o.model.variant = f.model.variant;
  o.model.prediction_type = o.prediction_type;
  {  // the one line on what a single file was taken for, before the dataset is read (the trainer opens it again)
    ModelFlags model = f.model;
    model.spec.prediction_type = o.prediction_type;
    model.open();
  }
  o.model_name = f.model.spec.model;
  o.load = f.device.load_options(f.model.variant);
  warn_if_slow_bf16(o.mixed_precision == "bf16" && !o.load.device.is_cuda());
  o.batches.interpolation = train::parse_interpolation(f.interpolation, "--image_interpolation_mode");
  o.lora.alpha = f.lora_alpha.value_or(double(o.lora.rank));
  std::unique_ptr<ProgressBar> progress;
  train::TrainCallbacks callbacks;
  callbacks.on_start = [&](const train::TrainPlan& plan) {
    std::cout << "***** Running training *****\n  Num examples = " << plan.examples << "\n  Num Epochs = " << plan.epochs
              << "\n  Instantaneous batch size per device = " << plan.batch_size
              << "\n  Total train batch size (w. parallel, distributed & accumulation) = " << plan.batch_size * plan.accumulation
              << "\n  Gradient Accumulation steps = " << plan.accumulation << "\n  Total optimization steps = " << plan.total_steps
              << std::endl;
    progress = std::make_unique<ProgressBar>("Steps", plan.total_steps, true, plan.first_step);
    progress->update(plan.first_step);
  };
  callbacks.on_step = [&](const train::StepReport& r) {
    progress->update(r.step, "lr=" + format_number(r.lr) + ", step_loss=" + format_number(r.loss, 3));
  };
  callbacks.on_message = [&](const std::string& message) {
    ProgressBar::end_open_line();
    std::cout << message << std::endl;
  };
  callbacks.stop_requested = [] { return interrupt_requested != 0; };
  interrupt_requested = 0;
  std::signal(SIGINT, on_interrupt);
  const auto result = train::train_lora(o, callbacks);
  std::signal(SIGINT, SIG_DFL);
  if (progress) progress->finish();
  if (result.interrupted) {
    std::cout << "interrupted after step " << result.steps << "; continue with --resume_from_checkpoint latest (" << result.last_checkpoint
              << ")\n";
    throw ExitStatus{130};
  }
  std::cout << "wrote " << result.lora_path << " after " << result.steps << " steps\n";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto& o = f->options;
  CLI::App* sub = app.add_subcommand("train", "LoRA fine-tuning (diffusers' train_text_to_image_lora.py flags)");
  f->model.add_to(sub, "--pretrained_model_name_or_path,--model", {/*vae=*/true, /*prediction_type=*/false});
  sub->add_option("--train_data_dir", o.data_dir, "image folder with metadata.jsonl / metadata.csv / .txt captions");
  sub->add_option("--dataset_name", f->dataset_name, "a dataset folder or a Hub image-folder dataset in the local cache (instead of --train_data_dir)");
  sub->add_option("--caption_column", o.dataset.caption_column, "caption column")->capture_default_str();
  sub->add_option("--image_column", o.dataset.image_column, "image column (file_name also works)")->capture_default_str();
  sub->add_option("--max_train_samples", o.max_train_samples, "use only the first N examples");
  add_max_image_pixels_flag(sub);
  sub->add_option("--resolution", o.batches.resolution, "training resolution (shorter side, then cropped square)")->capture_default_str();
  sub->add_flag("--center_crop", o.batches.center_crop, "center crop (default: random crop)");
  sub->add_flag("--random_flip", o.batches.random_flip, "random horizontal flips");
  sub->add_option("--image_interpolation_mode", f->interpolation, "lanczos, bicubic, bilinear or nearest")
      ->check(CLI::IsMember({"lanczos", "bicubic", "bilinear", "nearest"}))
      ->capture_default_str();
  sub->add_flag("--cache_latents", o.batches.cache, "encode images and captions once before training (needs --center_crop)");
  sub->add_option("--trigger_word", o.trigger_word, "recorded in the LoRA metadata (default: detected from the captions)");
  sub->add_option("--train_batch_size", o.batch_size, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  sub->add_option("--num_train_epochs", o.num_epochs, "epochs (unless --max_train_steps)")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--max_train_steps", o.max_train_steps, "optimizer steps (overrides --num_train_epochs)")->check(CLI::Range(1, 100000000));
  sub->add_option("--gradient_accumulation_steps", o.gradient_accumulation_steps, "batches per optimizer step")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub->add_flag("--gradient_checkpointing", o.gradient_checkpointing, "recompute UNet activations in backward to save memory");
  sub->add_option("--mixed_precision", o.mixed_precision, "no, bf16 (CPU or CUDA) or fp16 (CUDA); LoRA weights stay fp32")
      ->check(CLI::IsMember({"no", "bf16", "fp16"}))
      ->capture_default_str();
  sub->add_option("--learning_rate", o.learning_rate, "peak learning rate")->check(number_in(0, 100, true))->capture_default_str();
  sub->add_flag("--scale_lr", o.scale_lr, "multiply the learning rate by batch size x accumulation");
  sub->add_option("--lr_scheduler", o.lr.kind, "constant, constant_with_warmup, linear, cosine, cosine_with_restarts or polynomial")
      ->check(CLI::IsMember({"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"}))
      ->capture_default_str();
  sub->add_option("--lr_warmup_steps", o.lr.warmup_steps, "warm-up steps")->capture_default_str();
  sub->add_option("--lr_num_cycles", o.lr.num_cycles, "hard restarts of cosine_with_restarts")->check(CLI::Range(1, 100000))->capture_default_str();
  sub->add_option("--lr_power", o.lr.power, "power of the polynomial schedule")->check(number_in(0, 100, true))->capture_default_str();
  sub->add_option("--adam_beta1", o.adam_beta1, "AdamW beta1")->check(number_in(0, 1, false, true))->capture_default_str();
  sub->add_option("--adam_beta2", o.adam_beta2, "AdamW beta2")->check(number_in(0, 1, false, true))->capture_default_str();
  sub->add_option("--adam_weight_decay", o.adam_weight_decay, "AdamW weight decay")->check(number_in(0, 100))->capture_default_str();
  sub->add_option("--adam_epsilon", o.adam_epsilon, "AdamW epsilon")->check(number_in(0, 1, true))->capture_default_str();
  sub->add_option("--max_grad_norm", o.max_grad_norm, "gradient clipping norm")->check(number_in(0, 1e6, true))->capture_default_str();
  sub->add_option("--rank", o.lora.rank, "LoRA rank")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--lora_alpha", f->lora_alpha, "LoRA alpha (default: = rank)")->check(number_in(0, 1e6, true));
  sub->add_option("--noise_offset", o.noise_offset, "noise offset (Guttenberg 2023)")->check(number_in(0, 10))->capture_default_str();
  sub->add_option("--snr_gamma", o.snr_gamma, "Min-SNR weighting gamma (e.g. 5; 0 = off)")->check(number_in(0, 1e6))->capture_default_str();
  sub->add_option("--prediction_type", o.prediction_type, "epsilon or v_prediction (default: the model's)")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  sub->add_option("--seed", o.seed, "seed of LoRA init, shuffling, crops, noise and timesteps")->check(seed_number())->capture_default_str();
  sub->add_option("--output_dir", o.output_dir, "where the LoRA, checkpoints, samples/ and logs/ are written")->required();
  sub->add_flag("--save_kohya", o.save_kohya, "also write pytorch_lora_weights_kohya.safetensors (A1111/ComfyUI keys)");
  sub->add_option("--checkpointing_steps", o.checkpointing_steps, "save output_dir/checkpoint-N every N steps (0: never)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40))
      ->capture_default_str();
  sub->add_option("--checkpoints_total_limit", o.checkpoints_total_limit, "keep at most this many checkpoints (oldest removed)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  sub->add_option("--resume_from_checkpoint", o.resume_from_checkpoint, "\"latest\", a checkpoint folder, or a checkpoint-N name in output_dir");
  sub->add_option("--validation_prompt", o.validation.prompt, "prompt of sample images during training");
  sub->add_option("--num_validation_images", o.validation.num_images, "sample images per validation")->check(CLI::Range(1, 64))->capture_default_str();
  sub->add_option("--validation_epochs", o.validation_epochs, "validate every N epochs")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--validation_inference_steps", o.validation.steps, "sampling steps of the sample images")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  f->device.add_to(sub, /*with_dtype=*/false);
  sub->callback([f] {
    auto& opts = f->options;
    opts.validation.size = opts.batches.resolution;
    opts.validation.seed = opts.seed;
    opts.validation.model_name = f->model.spec.model;
    run(*f);
  });
}

}  // namespace sdtune::cli
