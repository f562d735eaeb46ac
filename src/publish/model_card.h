// The README.md of a published LoRA: YAML front matter the Hugging Face Hub reads (base model,
// license, library, tags, trigger word, a widget per sample image) and a body saying how to use it,
// how it was trained and what it cannot do.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdtune::publish {

struct SampleImage {
  std::string path;  // relative to the repository
  std::string prompt;
};

struct CardInfo {
  std::string repo_id;      // "user/name", as load_lora_weights takes it
  std::string base_model;   // "stabilityai/stable-diffusion-2"
  std::string license;
  std::string trigger_word;
  std::string weights_file = "pytorch_lora_weights.safetensors";
  std::string kohya_file;   // empty when not published
  std::vector<SampleImage> samples;
  // Training details from the LoRA's metadata (sdtune_args, sdtune_* keys); shown as a table.
  std::map<std::string, std::string> metadata;
};

std::string model_card(const CardInfo& info);

// The license the base model is published under, by its family (ss_base_model_version).
std::string default_license(const std::string& base_model_version);

// The YAML between the leading "---" lines, or an Error naming `where` when there is none.
std::string front_matter(const std::string& readme, const std::string& where);

}  // namespace sdtune::publish
