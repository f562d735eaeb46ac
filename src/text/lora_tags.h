// A1111 / stable-diffusion.cpp LoRA tags inside prompts: "<lora:NAME>" or "<lora:NAME:WEIGHT>".
#pragma once
#include <string>
#include <vector>

namespace sdtune::text {

struct LoraTag {
  std::string name;
  double weight = 1.0;
};

struct PromptWithLoras {
  std::string prompt;  // the tags removed
  std::vector<LoraTag> loras;
};

// Removes every <lora:...> tag; a malformed tag (empty name, bad weight) is an Error naming it.
PromptWithLoras extract_lora_tags(const std::string& prompt);

}  // namespace sdtune::text
