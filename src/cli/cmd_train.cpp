// sdtune train: LoRA fine-tuning with the flags of diffusers' train_text_to_image_lora.py.
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/progress.h"
#include "train/trainer.h"

namespace sdtune::cli {

namespace {

struct TrainFlags {
  ModelFlags model;
  DeviceFlags device;
  train::TrainOptions options;
  std::string interpolation = "lanczos";
  c10::optional<double> lora_alpha;
};

std::string format_lr(double lr) {
  std::ostringstream s;
  s << lr;
  return s.str();
}

void run(TrainFlags& f) {
  auto& o = f.options;
  o.model_dir = f.model.resolve();
  o.model_name = f.model.model;
  o.load = f.device.load_options(f.model.variant);
  o.interpolation = train::parse_interpolation(f.interpolation, "--image_interpolation_mode");
  o.lora.alpha = f.lora_alpha.value_or(double(o.lora.rank));
  std::unique_ptr<ProgressBar> progress;
  const auto result = train::train_lora(
      o,
      [&](const train::TrainPlan& plan) {
        std::cout << "***** Running training *****\n  Num examples = " << plan.examples << "\n  Num Epochs = " << plan.epochs
                  << "\n  Instantaneous batch size per device = " << plan.batch_size
                  << "\n  Total train batch size (w. parallel, distributed & accumulation) = " << plan.batch_size * plan.accumulation
                  << "\n  Gradient Accumulation steps = " << plan.accumulation << "\n  Total optimization steps = " << plan.total_steps
                  << std::endl;
        progress = std::make_unique<ProgressBar>("Steps", plan.total_steps);
        progress->update(0);
      },
      [&](const train::StepReport& r) {
        std::ostringstream loss;
        loss.precision(3);
        loss << r.loss;
        progress->update(r.step, "lr=" + format_lr(r.lr) + ", step_loss=" + loss.str());
      });
  if (progress) progress->finish();
  std::cout << "wrote " << result.lora_path << " after " << result.steps << " steps\n";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto& o = f->options;
  CLI::App* sub = app.add_subcommand("train", "LoRA fine-tuning (diffusers' train_text_to_image_lora.py flags)");
  f->model.add_to(sub, "--pretrained_model_name_or_path,--model");
  sub->add_option("--train_data_dir", o.data_dir, "image folder with metadata.jsonl / metadata.csv / .txt captions")->required();
  sub->add_option("--caption_column", o.dataset.caption_column, "caption column")->capture_default_str();
  sub->add_option("--image_column", o.dataset.image_column, "image column (file_name also works)")->capture_default_str();
  sub->add_option("--max_train_samples", o.max_train_samples, "use only the first N examples");
  sub->add_option("--resolution", o.resolution, "training resolution (shorter side, then cropped square)")->capture_default_str();
  sub->add_flag("--center_crop", o.center_crop, "center crop (default: random crop)");
  sub->add_flag("--random_flip", o.random_flip, "random horizontal flips");
  sub->add_option("--image_interpolation_mode", f->interpolation, "lanczos, bicubic, bilinear or nearest")
      ->check(CLI::IsMember({"lanczos", "bicubic", "bilinear", "nearest"}))
      ->capture_default_str();
  sub->add_option("--train_batch_size", o.batch_size, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  sub->add_option("--num_train_epochs", o.num_epochs, "epochs (unless --max_train_steps)")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--max_train_steps", o.max_train_steps, "optimizer steps (overrides --num_train_epochs)")->check(CLI::Range(1, 100000000));
  sub->add_option("--gradient_accumulation_steps", o.gradient_accumulation_steps, "batches per optimizer step")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub->add_option("--learning_rate", o.learning_rate, "peak learning rate")->capture_default_str();
  sub->add_flag("--scale_lr", o.scale_lr, "multiply the learning rate by batch size x accumulation");
  sub->add_option("--lr_scheduler", o.lr_scheduler,
                  "constant, constant_with_warmup, linear, cosine, cosine_with_restarts or polynomial")
      ->check(CLI::IsMember({"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"}))
      ->capture_default_str();
  sub->add_option("--lr_warmup_steps", o.lr_warmup_steps, "warm-up steps")->capture_default_str();
  sub->add_option("--adam_beta1", o.adam_beta1, "AdamW beta1")->capture_default_str();
  sub->add_option("--adam_beta2", o.adam_beta2, "AdamW beta2")->capture_default_str();
  sub->add_option("--adam_weight_decay", o.adam_weight_decay, "AdamW weight decay")->capture_default_str();
  sub->add_option("--adam_epsilon", o.adam_epsilon, "AdamW epsilon")->capture_default_str();
  sub->add_option("--max_grad_norm", o.max_grad_norm, "gradient clipping norm")->capture_default_str();
  sub->add_option("--rank", o.lora.rank, "LoRA rank")->check(CLI::Range(1, 1024))->capture_default_str();
  sub->add_option("--lora_alpha", f->lora_alpha, "LoRA alpha (default: = rank)");
  sub->add_option("--noise_offset", o.noise_offset, "noise offset (Guttenberg 2023)")->capture_default_str();
  sub->add_option("--snr_gamma", o.snr_gamma, "Min-SNR weighting gamma (e.g. 5; 0 = off)")->capture_default_str();
  sub->add_option("--prediction_type", o.prediction_type, "epsilon or v_prediction (default: the model's)")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  sub->add_option("--seed", o.seed, "seed of LoRA init, shuffling, crops, noise and timesteps")->capture_default_str();
  sub->add_option("--output_dir", o.output_dir, "where pytorch_lora_weights.safetensors and logs/train.jsonl are written")->required();
  sub->add_flag("--save_kohya", o.save_kohya, "also write pytorch_lora_weights_kohya.safetensors (A1111/ComfyUI keys)");
  f->device.add_to(sub, /*with_dtype=*/false);
  sub->callback([f] { run(*f); });
}

}  // namespace sdtune::cli
