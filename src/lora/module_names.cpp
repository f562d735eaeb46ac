#include "lora/module_names.h"

#include <vector>

namespace sdtune::lora {

std::string flatten_module_name(const std::string& dotted) {
  std::string flat = dotted;
  for (auto& c : flat)
    if (c == '.') c = '_';
  return flat;
}

std::string unflatten_module_name(const std::string& flat) {
  // Multi-word names of SD UNet / VAE / CLIP modules, longest first so that e.g. conv_norm_out wins
  // over conv_out.
  static const std::vector<std::string> compound = {
      "post_quant_conv", "conv_norm_out", "transformer_blocks", "quant_conv", "group_norm", "position_embedding", "token_embedding", "final_layer_norm",
      "time_emb_proj", "conv_shortcut", "time_embedding", "down_blocks", "layer_norm1", "layer_norm2",
      "downsamplers", "upsamplers", "up_blocks", "mid_block", "self_attn", "proj_out", "out_proj", "linear_1",
      "linear_2", "proj_in", "conv_out", "conv_in", "q_proj", "k_proj", "v_proj", "to_out", "to_q", "to_k", "to_v"};
  std::string out;
  size_t i = 0;
  while (i < flat.size()) {
    size_t length = 0;
    for (const auto& name : compound)
      if (flat.compare(i, name.size(), name) == 0 && (i + name.size() == flat.size() || flat[i + name.size()] == '_')) {
        length = name.size();
        break;
      }
    if (length == 0) {
      const size_t next = flat.find('_', i);
      length = (next == std::string::npos ? flat.size() : next) - i;
    }
    if (!out.empty()) out += '.';
    out += flat.substr(i, length);
    i += length + 1;  // skip the separating underscore
  }
  return out;
}

std::string target_name(const std::string& module) {
  const size_t out = module.rfind(".to_out.");
  return module.substr(out != std::string::npos ? out + 1 : module.rfind('.') + 1);
}

}  // namespace sdtune::lora
