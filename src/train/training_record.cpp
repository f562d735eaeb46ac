#include "train/training_record.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "train/trainer.h"

namespace fs = std::filesystem;

namespace sdtune::train {

namespace {

struct Fnv1a {
  uint64_t value = 1469598103934665603ULL;
  void add(const char* data, size_t size) {
    for (size_t i = 0; i < size; ++i) value = (value ^ uint8_t(data[i])) * 1099511628211ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }  // with the terminator: "ab"+"c" != "a"+"bc"
};

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string trim(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// kohya's ss_tag_frequency: {"<dataset folder>": {"tag": count}}, tags being comma-separated parts.
std::string tag_frequency(const Dataset& dataset) {
  nlohmann::json counts = nlohmann::json::object();
  for (const auto& item : dataset.items)
    for (const auto& caption : item.captions) {
      std::stringstream parts(caption);
      std::string tag;
      while (std::getline(parts, tag, ',')) {
        tag = trim(tag);
        if (!tag.empty()) counts[tag] = counts.value(tag, 0) + 1;
      }
    }
  return nlohmann::json{{fs::path(dataset.root).filename().string(), counts}}.dump();
}

}  // namespace

std::string detect_trigger_word(const Dataset& dataset) {
  std::set<std::string> common;
  bool first = true;
  for (const auto& item : dataset.items) {
    std::set<std::string> words;
    for (const auto& caption : item.captions) {
      std::istringstream in(caption);
      std::string word;
      while (in >> word) {
        while (!word.empty() && (word.back() == ',' || word.back() == '.')) word.pop_back();
        bool made_up = false;
        for (unsigned char c : word) made_up = made_up || !std::isalpha(c);
        if (made_up && word.size() > 2) words.insert(word);
      }
    }
    if (first) {
      common = words;
      first = false;
    } else {
      std::set<std::string> both;
      for (const auto& w : common)
        if (words.count(w)) both.insert(w);
      common.swap(both);
    }
  }
  return common.size() == 1 ? *common.begin() : "";
}

std::string dataset_hash(const Dataset& dataset) {
  Fnv1a hash;
  std::vector<char> buffer(1 << 16);
  for (const auto& item : dataset.items) {
    hash.add(fs::path(item.image_path).filename().string());
    std::ifstream in(item.image_path, std::ios::binary);
    while (in.read(buffer.data(), std::streamsize(buffer.size())) || in.gcount() > 0) hash.add(buffer.data(), size_t(in.gcount()));
    for (const auto& caption : item.captions) hash.add(caption);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash.value));
  return hex;
}

TrainingRecord describe_training(const TrainOptions& o, const Dataset& dataset, const pipeline::StableDiffusion& model,
                                 const std::string& prediction_type) {
  const std::string trigger = o.trigger_word.empty() ? detect_trigger_word(dataset) : o.trigger_word;
  const std::string hash = dataset_hash(dataset);
  const bool v2 = model.text_encoder->config().hidden_act == "gelu";  // OpenCLIP (SD 2.x) uses gelu, CLIP ViT-L quick_gelu
  TrainingRecord r;
  r.arguments = {{"pretrained_model_name_or_path", o.model_name},
                 {"train_data_dir", o.data_dir},
                 {"num_examples", int64_t(dataset.items.size())},
                 {"dataset_hash", hash},
                 {"trigger_word", trigger},
                 {"caption_column", o.dataset.caption_column},
                 {"resolution", o.batches.resolution},
                 {"center_crop", o.batches.center_crop},
                 {"random_flip", o.batches.random_flip},
                 {"cache_latents", o.batches.cache},
                 {"train_batch_size", o.batch_size},
                 {"gradient_accumulation_steps", o.gradient_accumulation_steps},
                 {"num_train_epochs", o.num_epochs},
                 {"max_train_steps", o.max_train_steps},
                 {"learning_rate", o.learning_rate},
                 {"scale_lr", o.scale_lr},
                 {"lr_scheduler", o.lr.kind},
                 {"lr_warmup_steps", o.lr.warmup_steps},
                 {"adam_beta1", o.adam_beta1},
                 {"adam_beta2", o.adam_beta2},
                 {"adam_weight_decay", o.adam_weight_decay},
                 {"adam_epsilon", o.adam_epsilon},
                 {"max_grad_norm", o.max_grad_norm},
                 {"rank", o.lora.rank},
                 {"lora_alpha", o.lora.alpha},
                 {"lora_target_modules", o.lora.targets},
                 {"noise_offset", o.noise_offset},
                 {"snr_gamma", o.snr_gamma},
                 {"prediction_type", prediction_type},
                 {"mixed_precision", o.mixed_precision},
                 {"gradient_checkpointing", o.gradient_checkpointing},
                 {"seed", o.seed}};
  r.metadata = {{"sdtune_base_model", o.model_name},
                {"sdtune_rank", std::to_string(o.lora.rank)},
                {"sdtune_alpha", number(o.lora.alpha)},
                {"sdtune_resolution", std::to_string(o.batches.resolution)},
                {"sdtune_learning_rate", number(o.learning_rate)},
                {"sdtune_lr_scheduler", o.lr.kind},
                {"sdtune_seed", std::to_string(o.seed)},
                {"sdtune_prediction_type", prediction_type},
                {"sdtune_num_images", std::to_string(dataset.items.size())},
                {"sdtune_dataset_hash", hash},
                {"sdtune_args", r.arguments.dump()},
                {"ss_network_module", "networks.lora"},
                {"ss_network_dim", std::to_string(o.lora.rank)},
                {"ss_network_alpha", number(o.lora.alpha)},
                {"ss_base_model_version", v2 ? "sd_v2" : "sd_v1"},
                {"ss_v2", v2 ? "True" : "False"},
                {"ss_v_parameterization", prediction_type == "v_prediction" ? "True" : "False"},
                {"ss_sd_model_name", o.model_name},
                {"ss_resolution", "(" + std::to_string(o.batches.resolution) + ", " + std::to_string(o.batches.resolution) + ")"},
                {"ss_num_train_images", std::to_string(dataset.items.size())},
                {"ss_batch_size_per_device", std::to_string(o.batch_size)},
                {"ss_gradient_accumulation_steps", std::to_string(o.gradient_accumulation_steps)},
                {"ss_learning_rate", number(o.learning_rate)},
                {"ss_unet_lr", number(o.learning_rate)},
                {"ss_lr_scheduler", o.lr.kind},
                {"ss_lr_warmup_steps", std::to_string(o.lr.warmup_steps)},
                {"ss_optimizer", "torch.optim.AdamW"},
                {"ss_mixed_precision", o.mixed_precision},
                {"ss_noise_offset", number(o.noise_offset)},
                {"ss_min_snr_gamma", number(o.snr_gamma)},
                {"ss_seed", std::to_string(o.seed)},
                {"ss_output_name", fs::path(o.output_dir).filename().string()},
                {"ss_tag_frequency", tag_frequency(dataset)}};
  if (!trigger.empty()) r.metadata["sdtune_trigger_word"] = trigger;
  return r;
}

std::map<std::string, std::string> lora_metadata(const TrainingRecord& record, int64_t steps, double seconds) {
  auto metadata = record.metadata;
  metadata["sdtune_steps"] = std::to_string(steps);
  metadata["sdtune_training_seconds"] = number(seconds);
  metadata["ss_steps"] = std::to_string(steps);
  return metadata;
}

}  // namespace sdtune::train
