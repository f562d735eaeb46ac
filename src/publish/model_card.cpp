#include "publish/model_card.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace sdtune::publish {

namespace {

std::string yaml_front_matter(const CardInfo& info) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (!info.base_model.empty()) out << YAML::Key << "base_model" << YAML::Value << info.base_model;
  out << YAML::Key << "license" << YAML::Value << info.license;
  out << YAML::Key << "library_name" << YAML::Value << "diffusers";
  out << YAML::Key << "pipeline_tag" << YAML::Value << "text-to-image";
  out << YAML::Key << "tags" << YAML::Value << YAML::BeginSeq << "stable-diffusion"
      << "stable-diffusion-diffusers"
      << "text-to-image"
      << "diffusers"
      << "lora"
      << "sdtune" << YAML::EndSeq;
  if (!info.trigger_word.empty()) out << YAML::Key << "instance_prompt" << YAML::Value << info.trigger_word;
  if (!info.samples.empty()) {
    out << YAML::Key << "widget" << YAML::Value << YAML::BeginSeq;
    for (const auto& s : info.samples)
      out << YAML::BeginMap << YAML::Key << "text" << YAML::Value << s.prompt << YAML::Key << "output" << YAML::Value << YAML::BeginMap
          << YAML::Key << "url" << YAML::Value << s.path << YAML::EndMap << YAML::EndMap;
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return out.c_str();
}

std::string value_or(const std::map<std::string, std::string>& m, const std::string& key, const std::string& fallback = "unknown") {
  auto it = m.find(key);
  return it == m.end() || it->second.empty() ? fallback : it->second;
}

}  // namespace

std::string default_license(const std::string& base_model_version) {
  if (base_model_version == "sd_v2") return "openrail++";
  if (base_model_version == "sd_v1") return "creativeml-openrail-m";
  return "other";
}

std::string model_card(const CardInfo& info) {
  const auto& m = info.metadata;
  nlohmann::json args = nlohmann::json::parse(value_or(m, "sdtune_args", "{}"), nullptr, false);
  if (!args.is_object()) args = nlohmann::json::object();
  auto arg = [&](const char* key) {
    if (!args.contains(key)) return std::string("unknown");
    return args[key].is_string() ? args[key].get<std::string>() : args[key].dump();
  };
  const std::string base = info.base_model.empty() ? "the base model" : info.base_model;
  const std::string example_prompt = info.samples.empty() ? (info.trigger_word.empty() ? "a picture" : info.trigger_word + ", a picture")
                                                          : info.samples.front().prompt;
  std::ostringstream card;
  card << "---\n" << yaml_front_matter(info) << "\n---\n\n";
  card << "# LoRA text-to-image fine-tune: " << info.repo_id << "\n\n"
       << "LoRA weights (rank " << value_or(m, "ss_network_dim") << ", alpha " << value_or(m, "ss_network_alpha")
       << ", on the UNet's attention projections) for **" << base << "**, trained with sdtune on "
       << value_or(m, "sdtune_num_images") << " images. The file holds only the LoRA, not the base model.\n\n";
  if (!info.trigger_word.empty()) card << "Trigger word: `" << info.trigger_word << "` (put it in the prompt).\n\n";
  if (!info.samples.empty()) {
    card << "## Samples\n\n";
    for (const auto& s : info.samples) card << "![" << s.prompt << "](" << s.path << ")\n";
    card << "\nPrompt: `" << info.samples.front().prompt << "`\n\n";
  }
  card << "## How to use\n\nWith diffusers:\n\n```python\nimport torch\nfrom diffusers import DiffusionPipeline\n\n"
       << "pipe = DiffusionPipeline.from_pretrained(\"" << (info.base_model.empty() ? "BASE_MODEL" : info.base_model)
       << "\", torch_dtype=torch.float16).to(\"cuda\")\n"
       << "pipe.load_lora_weights(\"" << info.repo_id << "\")\n"
       << "image = pipe(" << nlohmann::json(example_prompt).dump() << ", num_inference_steps=30).images[0]\n```\n\n"
       << "With sdtune:\n\n```\nsdtune generate --model " << (info.base_model.empty() ? "BASE_MODEL" : info.base_model) << " --lora "
       << info.repo_id << " --prompt " << nlohmann::json(example_prompt).dump() << " --output image.png\n```\n\n";
  if (!info.kohya_file.empty())
    card << "A1111 / ComfyUI: copy `" << info.kohya_file << "` into `models/Lora` and write `<lora:"
         << info.kohya_file.substr(0, info.kohya_file.size() - 12) << ":1>` in the prompt.\n\n";
  card << "## Training details\n\n| | |\n|---|---|\n"
       << "| Base model | " << base << " |\n"
       << "| Dataset | " << arg("train_data_dir") << " (" << value_or(m, "sdtune_num_images") << " images, hash "
       << value_or(m, "sdtune_dataset_hash") << ") |\n"
       << "| Steps | " << value_or(m, "sdtune_steps") << " |\n"
       << "| Batch size × accumulation | " << arg("train_batch_size") << " × " << arg("gradient_accumulation_steps") << " |\n"
       << "| Resolution | " << value_or(m, "sdtune_resolution") << " |\n"
       << "| LoRA rank / alpha | " << value_or(m, "ss_network_dim") << " / " << value_or(m, "ss_network_alpha") << " |\n"
       << "| Learning rate | " << value_or(m, "sdtune_learning_rate") << " (" << value_or(m, "sdtune_lr_scheduler") << ", warm-up "
       << arg("lr_warmup_steps") << ") |\n"
       << "| Optimizer | AdamW (weight decay " << arg("adam_weight_decay") << "), gradient clipping " << arg("max_grad_norm") << " |\n"
       << "| Noise scheduler | DDPM from the base model's scheduler config, target " << value_or(m, "sdtune_prediction_type") << " |\n"
       << "| Mixed precision | " << arg("mixed_precision") << " |\n"
       << "| Seed | " << value_or(m, "sdtune_seed") << " |\n"
       << "| Training time | " << value_or(m, "sdtune_training_seconds") << " s |\n\n";
  card << "## Limitations\n\n"
       << "- Trained on a few images: it reproduces their subject and style, and may also copy their backgrounds, framing and "
          "flaws. Prompts far from the training captions work less well.\n"
       << "- It inherits the biases, limitations and license terms of " << base << "; it has not been evaluated for safety.\n"
       << "- It fits this base model only: other models (another version or architecture) give wrong results or refuse to load it.\n";
  return card.str();
}

std::string front_matter(const std::string& readme, const std::string& where) {
  if (readme.rfind("---\n", 0) != 0) throw Error(where, "does not start with YAML front matter (---)");
  const size_t end = readme.find("\n---\n", 3);
  if (end == std::string::npos) throw Error(where, "front matter has no closing ---");
  return readme.substr(4, end - 3);
}

}  // namespace sdtune::publish
