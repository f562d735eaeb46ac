// kohya/A1111 flatten module paths by turning dots into underscores
// ("down_blocks.0.attentions.0...attn1.to_q" -> "down_blocks_0_attentions_0_..._attn1_to_q").
// Names of diffusers' UNet and transformers' CLIP contain underscores themselves, so undoing it needs
// their vocabulary.
#pragma once
#include <string>

namespace sdtune::lora {

std::string flatten_module_name(const std::string& dotted);
std::string unflatten_module_name(const std::string& flat);

// The short target name PEFT's target_modules use: "...attn1.to_q" -> "to_q", "...to_out.0" -> "to_out.0".
std::string target_name(const std::string& module);

}  // namespace sdtune::lora
