// PEFT's adapter_config.json, found beside LoRA weights: rank, alpha and per-module overrides.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sdtune::io {

struct AdapterConfig {
  int rank = 8;             // "r"
  double lora_alpha = 8;    // "lora_alpha"
  bool use_rslora = false;  // scale = alpha / sqrt(r) instead of alpha / r
  std::vector<std::string> target_modules;
  std::map<std::string, int> rank_pattern;      // module-name pattern -> rank
  std::map<std::string, double> alpha_pattern;  // module-name pattern -> alpha
};

// Reads folder/adapter_config.json; nullopt when the folder has none. Errors name the file.
std::optional<AdapterConfig> read_adapter_config(const std::string& folder);

}  // namespace sdtune::io
