#include "io/checkpoint_keys.h"

#include <cctype>

#include "core/error.h"

namespace sdtune::io {

namespace {

// Inside a UNet resnet (diffusers ResnetBlock2D <-> LDM ResBlock).
const std::vector<KeyMap::Rename> kUnetResnet = {
    {"norm1", "in_layers.0"},         {"conv1", "in_layers.2"},   {"norm2", "out_layers.0"},
    {"conv2", "out_layers.3"},        {"time_emb_proj", "emb_layers.1"}, {"conv_shortcut", "skip_connection"},
};
// Inside a VAE resnet only the shortcut differs.
const std::vector<KeyMap::Rename> kVaeResnet = {{"conv_shortcut", "nin_shortcut"}};
// The VAE's mid-block attention: LDM stores q/k/v/proj_out as 1x1 convolutions.
const std::vector<KeyMap::Rename> kVaeAttention = {
    {"group_norm", "norm"},
    {"to_q.weight", "q.weight", 0, 1, true},           {"to_q.bias", "q.bias"},
    {"to_k.weight", "k.weight", 0, 1, true},           {"to_k.bias", "k.bias"},
    {"to_v.weight", "v.weight", 0, 1, true},           {"to_v.bias", "v.bias"},
    {"to_out.0.weight", "proj_out.weight", 0, 1, true}, {"to_out.0.bias", "proj_out.bias"},
};
// One OpenCLIP residual block: q, k and v are thirds of one in_proj tensor.
const std::vector<KeyMap::Rename> kOpenClipLayer = {
    {"self_attn.q_proj.weight", "attn.in_proj_weight", 0, 3}, {"self_attn.k_proj.weight", "attn.in_proj_weight", 1, 3},
    {"self_attn.v_proj.weight", "attn.in_proj_weight", 2, 3}, {"self_attn.q_proj.bias", "attn.in_proj_bias", 0, 3},
    {"self_attn.k_proj.bias", "attn.in_proj_bias", 1, 3},     {"self_attn.v_proj.bias", "attn.in_proj_bias", 2, 3},
    {"self_attn.out_proj", "attn.out_proj"},                   {"layer_norm1", "ln_1"},
    {"layer_norm2", "ln_2"},                                   {"mlp.fc1", "mlp.c_fc"},
    {"mlp.fc2", "mlp.c_proj"},
};

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// `rule` covers `name` as a whole name, or as a prefix ending in '.' (the empty prefix covers all).
bool covers(const std::string& rule, const std::string& name) {
  if (rule.empty() || rule.back() == '.') return starts_with(name, rule);
  return name == rule;
}

// Per-block counts that a config gives as one number or a list.
std::vector<int64_t> per_block_counts(const Json& config, const std::string& key, size_t blocks, const std::string& where) {
  const auto it = config.find(key);
  if (it != config.end() && it->is_array()) {
    const auto list = config_value<std::vector<int64_t>>(config, key, {}, where);
    if (list.size() != blocks) throw Error(where, key + " must have one entry per block");
    return list;
  }
  return std::vector<int64_t>(blocks, config_value_in<int64_t>(config, key, 2, where, 1, 64));
}

std::string at(const std::string& base, size_t i) { return base + std::to_string(i) + "."; }

}  // namespace

StoredTensor KeyMap::original_of(const std::string& name) const {
  const Rule* best = nullptr;
  for (const auto& rule : rules_)
    if (covers(rule.diffusers, name) && (!best || rule.diffusers.size() > best->diffusers.size())) best = &rule;
  if (!best) return {};
  std::string rest = name.substr(best->diffusers.size());
  // A rule may cover a numbered list of blocks ("resnets." + "1.conv1.weight"): the index stays.
  size_t digits = 0;
  while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
  const std::string index = digits > 0 && digits < rest.size() && rest[digits] == '.' ? rest.substr(0, digits + 1) : "";
  rest = rest.substr(index.size());
  StoredTensor stored;
  if (best->inner) {
    for (const auto& rename : *best->inner) {
      if (rest != rename.diffusers && !starts_with(rest, rename.diffusers + ".")) continue;
      rest = rename.original + rest.substr(rename.diffusers.size());
      stored.part = rename.part, stored.parts = rename.parts, stored.conv1x1 = rename.conv1x1;
      break;
    }
  }
  stored.name = prefix_ + best->original + index + rest;
  return stored;
}

KeyMap unet_key_map(const Json& config, const std::string& where) {
  const auto down = config_value<std::vector<std::string>>(config, "down_block_types", {}, where);
  const auto up = config_value<std::vector<std::string>>(config, "up_block_types", {}, where);
  if (down.empty() || down.size() != up.size()) throw Error(where, "down_block_types and up_block_types must have the same, non-zero length");
  const auto layers = per_block_counts(config, "layers_per_block", down.size(), where);
  std::vector<KeyMap::Rule> rules = {
      {"time_embedding.linear_1.", "time_embed.0."}, {"time_embedding.linear_2.", "time_embed.2."},
      {"conv_in.", "input_blocks.0.0."},              {"conv_norm_out.", "out.0."},
      {"conv_out.", "out.2."},                        {"mid_block.resnets.0.", "middle_block.0.", &kUnetResnet},
      {"mid_block.attentions.0.", "middle_block.1."}, {"mid_block.resnets.1.", "middle_block.2.", &kUnetResnet},
  };
  // Input blocks count on from 1 (0 is conv_in): each down block's layers, then its downsampler.
  size_t input = 1;
  for (size_t i = 0; i < down.size(); ++i) {
    const std::string block = at("down_blocks.", i);
    for (int64_t j = 0; j < layers[i]; ++j, ++input) {
      rules.push_back({at(block + "resnets.", j), at("input_blocks.", input) + "0.", &kUnetResnet});
      rules.push_back({at(block + "attentions.", j), at("input_blocks.", input) + "1."});
    }
    rules.push_back({block + "downsamplers.0.conv.", at("input_blocks.", input++) + "0.op."});
  }
  // Output blocks: each up block has one layer more than its down block; the upsampler sits in the
  // last one, after the attention when the block has one.
  size_t output = 0;
  for (size_t i = 0; i < up.size(); ++i) {
    const std::string block = at("up_blocks.", i);
    const int64_t count = layers[up.size() - 1 - i] + 1;
    for (int64_t j = 0; j < count; ++j, ++output) {
      rules.push_back({at(block + "resnets.", j), at("output_blocks.", output) + "0.", &kUnetResnet});
      rules.push_back({at(block + "attentions.", j), at("output_blocks.", output) + "1."});
    }
    const bool attention = up[i].rfind("CrossAttn", 0) == 0;
    rules.push_back({block + "upsamplers.0.", at("output_blocks.", output - 1) + (attention ? "2." : "1.")});
  }
  return KeyMap(kLdmUnetPrefix, std::move(rules));
}

KeyMap vae_key_map(const Json& config, const std::string& prefix, const std::string& where) {
  const auto down = config_value<std::vector<std::string>>(config, "down_block_types", {}, where);
  const auto up = config_value<std::vector<std::string>>(config, "up_block_types", {}, where);
  if (down.empty() || down.size() != up.size()) throw Error(where, "down_block_types and up_block_types must have the same, non-zero length");
  std::vector<KeyMap::Rule> rules = {{"encoder.conv_norm_out.", "encoder.norm_out."}, {"decoder.conv_norm_out.", "decoder.norm_out."}};
  for (const std::string coder : {"encoder.", "decoder."}) {
    rules.push_back({coder + "conv_in.", coder + "conv_in."});
    rules.push_back({coder + "conv_out.", coder + "conv_out."});
    rules.push_back({coder + "mid_block.resnets.0.", coder + "mid.block_1.", &kVaeResnet});
    rules.push_back({coder + "mid_block.resnets.1.", coder + "mid.block_2.", &kVaeResnet});
    rules.push_back({coder + "mid_block.attentions.0.", coder + "mid.attn_1.", &kVaeAttention});
  }
  for (size_t i = 0; i < down.size(); ++i) {
    rules.push_back({at("encoder.down_blocks.", i) + "resnets.", at("encoder.down.", i) + "block.", &kVaeResnet});
    rules.push_back({at("encoder.down_blocks.", i) + "downsamplers.0.", at("encoder.down.", i) + "downsample."});
  }
  // The LDM decoder numbers its up blocks from the lowest resolution: diffusers' up_blocks.0 is up.N-1.
  for (size_t i = 0; i < up.size(); ++i) {
    const size_t ldm = up.size() - 1 - i;
    rules.push_back({at("decoder.up_blocks.", i) + "resnets.", at("decoder.up.", ldm) + "block.", &kVaeResnet});
    rules.push_back({at("decoder.up_blocks.", i) + "upsamplers.0.", at("decoder.up.", ldm) + "upsample."});
  }
  rules.push_back({"quant_conv.", "quant_conv."});
  rules.push_back({"post_quant_conv.", "post_quant_conv."});
  return KeyMap(prefix, std::move(rules));
}

KeyMap clip_text_key_map(const std::string& prefix, bool with_text_model) {
  return KeyMap(prefix, {{"text_model.", with_text_model ? "text_model." : ""}});
}

KeyMap open_clip_key_map(const std::string& prefix) {
  return KeyMap(prefix, {{"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
                         {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
                         {"text_model.final_layer_norm.", "ln_final."},
                         {"text_model.encoder.layers.", "transformer.resblocks.", &kOpenClipLayer}});
}

}  // namespace sdtune::io
