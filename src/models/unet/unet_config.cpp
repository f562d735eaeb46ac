#include "models/unet/unet_config.h"

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"

namespace sdtune::models {

namespace {

// An int-or-list config value expanded to `count` entries (diffusers accepts both forms).
template <typename T>
std::vector<T> per_block(const nlohmann::json& j, const std::string& key, const T& fallback, size_t count,
                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::vector<T>(count, fallback);
  if (it->is_array()) {
    auto values = io::config_value<std::vector<T>>(j, key, {}, where);
    if (values.size() != count)
      throw Error(where, "config key " + in_quotes(key) + " has " + std::to_string(values.size()) + " entries for " +
                             std::to_string(count) + " blocks");
    return values;
  }
  return std::vector<T>(count, io::config_value<T>(j, key, fallback, where));
}

void require_default(const nlohmann::json& j, const std::string& key, const nlohmann::json& expected, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null() || *it == expected) return;
  throw Error(where, "unsupported UNet config " + key + "=" + it->dump() + " (sdtune supports SD 1.x/2.x UNets)");
}

// Limits far above every SD/SDXL UNet (channels 1280, 10 transformer layers, 8 input channels),
// checked before anything is allocated.
constexpr int64_t kMaxChannels = 16384, kMaxBlocks = 8, kMaxLayers = 64;

// Each entry of a per-block list within [lo, hi].
void check_each(const std::vector<int64_t>& values, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] < lo || values[i] > hi)
      throw Error(where, std::string("config key \"") + key + "\" entry " + std::to_string(i) + " must be between " + std::to_string(lo) +
                             " and " + std::to_string(hi) + ", got " + std::to_string(values[i]));
}

// Every size before anything is allocated (a group count of 0 would divide by zero below).
void check_sizes(const UNetConfig& c, const char* heads_key, const std::string& where) {
  check_each(c.layers_per_block, "layers_per_block", 1, kMaxLayers, where);
  check_each(c.heads, heads_key, 1, kMaxChannels, where);
  check_each(c.cross_attention_dim, "cross_attention_dim", 1, kMaxChannels, where);
  check_each(c.transformer_layers_per_block, "transformer_layers_per_block", 1, kMaxLayers, where);
  check_each(c.reverse_transformer_layers, "reverse_transformer_layers_per_block", 1, kMaxLayers, where);
  if (c.norm_num_groups < 1 || c.norm_num_groups > kMaxChannels) throw Error(where, "config key \"norm_num_groups\" must be between 1 and 16384");
  if (!(c.norm_eps > 0 && c.norm_eps < 1)) throw Error(where, "config key \"norm_eps\" must be between 0 and 1 (exclusive)");
  for (const auto& [key, kernel] : {std::pair<const char*, int64_t>{"conv_in_kernel", c.conv_in_kernel}, {"conv_out_kernel", c.conv_out_kernel}})
    if (kernel < 1 || kernel > 15 || kernel % 2 == 0) throw Error(where, std::string("config key \"") + key + "\" must be an odd size from 1 to 15");
  if (c.downsample_padding < 0 || c.downsample_padding > 8) throw Error(where, "config key \"downsample_padding\" must be between 0 and 8");
  for (size_t i = 0; i < c.block_out_channels.size(); ++i)
    if (c.block_out_channels[i] % c.heads[i] != 0 || c.block_out_channels[i] % c.norm_num_groups != 0)
      throw Error(where, "block " + std::to_string(i) + ": " + std::to_string(c.block_out_channels[i]) +
                             " channels do not divide into the attention heads or norm groups");
}

}  // namespace

UNetConfig UNetConfig::from_json(const nlohmann::json& j, const std::string& where) {
  UNetConfig c;
  c.in_channels = io::config_value_in<int64_t>(j, "in_channels", 4, where, 1, 64);
  c.out_channels = io::config_value_in<int64_t>(j, "out_channels", 4, where, 1, 64);
  c.sample_size = io::config_value_in<int64_t>(j, "sample_size", 64, where, 1, 4096);
  c.block_out_channels = io::config_value<std::vector<int64_t>>(j, "block_out_channels", {320, 640, 1280, 1280}, where);
  if (c.block_out_channels.size() > size_t(kMaxBlocks)) throw Error(where, "block_out_channels has more than 8 blocks");
  check_each(c.block_out_channels, "block_out_channels", 1, kMaxChannels, where);
  c.down_block_types = io::config_value<std::vector<std::string>>(
      j, "down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}, where);
  c.up_block_types = io::config_value<std::vector<std::string>>(
      j, "up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}, where);
  const size_t blocks = c.block_out_channels.size();
  if (blocks == 0 || c.down_block_types.size() != blocks || c.up_block_types.size() != blocks)
    throw Error(where, "block_out_channels, down_block_types and up_block_types must have the same, non-zero length");
  for (const auto& t : c.down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") throw Error(where, "unsupported down block type " + in_quotes(t));
  for (const auto& t : c.up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") throw Error(where, "unsupported up block type " + in_quotes(t));
  const std::string mid = io::config_value<std::string>(j, "mid_block_type", "UNetMidBlock2DCrossAttn", where);
  if (mid != "UNetMidBlock2DCrossAttn") throw Error(where, "unsupported mid_block_type " + in_quotes(mid));

  c.layers_per_block = per_block<int64_t>(j, "layers_per_block", 2, blocks, where);
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim.
  const bool explicit_heads = j.contains("num_attention_heads") && !j["num_attention_heads"].is_null();
  c.heads = per_block<int64_t>(j, explicit_heads ? "num_attention_heads" : "attention_head_dim", 8, blocks, where);
  c.cross_attention_dim = per_block<int64_t>(j, "cross_attention_dim", 1280, blocks, where);
  c.transformer_layers_per_block = per_block<int64_t>(j, "transformer_layers_per_block", 1, blocks, where);
  c.only_cross_attention = per_block<bool>(j, "only_cross_attention", false, blocks, where);
  if (j.contains("reverse_transformer_layers_per_block") && !j["reverse_transformer_layers_per_block"].is_null())
    c.reverse_transformer_layers = per_block<int64_t>(j, "reverse_transformer_layers_per_block", 1, blocks, where);
  else
    c.reverse_transformer_layers.assign(c.transformer_layers_per_block.rbegin(), c.transformer_layers_per_block.rend());
  c.use_linear_projection = io::config_value<bool>(j, "use_linear_projection", false, where);
  c.upcast_attention = io::config_value<bool>(j, "upcast_attention", false, where);
  c.flip_sin_to_cos = io::config_value<bool>(j, "flip_sin_to_cos", true, where);
  c.freq_shift = io::config_value<double>(j, "freq_shift", 0, where);
  c.norm_num_groups = io::config_value<int64_t>(j, "norm_num_groups", 32, where);
  c.norm_eps = io::config_value<double>(j, "norm_eps", 1e-5, where);
  c.conv_in_kernel = io::config_value<int64_t>(j, "conv_in_kernel", 3, where);
  c.conv_out_kernel = io::config_value<int64_t>(j, "conv_out_kernel", 3, where);
  c.downsample_padding = io::config_value<int64_t>(j, "downsample_padding", 1, where);
  c.mid_block_scale_factor = io::config_value<double>(j, "mid_block_scale_factor", 1, where);
  c.center_input_sample = io::config_value<bool>(j, "center_input_sample", false, where);
  c.time_embedding_dim = io::config_value_in<int64_t>(j, "time_embedding_dim", c.block_out_channels[0] * 4, where, 1, 4 * kMaxChannels);
  check_sizes(c, explicit_heads ? "num_attention_heads" : "attention_head_dim", where);
  require_default(j, "act_fn", "silu", where);
  require_default(j, "resnet_time_scale_shift", "default", where);
  require_default(j, "time_embedding_type", "positional", where);
  require_default(j, "class_embed_type", nullptr, where);
  require_default(j, "addition_embed_type", nullptr, where);
  require_default(j, "encoder_hid_dim", nullptr, where);
  require_default(j, "time_cond_proj_dim", nullptr, where);
  require_default(j, "num_class_embeds", nullptr, where);
  require_default(j, "dual_cross_attention", false, where);
  require_default(j, "resnet_skip_time_act", false, where);
  require_default(j, "resnet_out_scale_factor", 1.0, where);
  require_default(j, "timestep_post_act", nullptr, where);
  require_default(j, "attention_type", "default", where);
  return c;
}

WeightSignature UNetConfig::weight_signature() const {
  const auto& ch = block_out_channels;
  const size_t blocks = ch.size();
  WeightSignature s{{"conv_in.weight", {ch[0], in_channels, conv_in_kernel, conv_in_kernel}},
                    {"time_embedding.linear_1.weight", {time_embedding_dim, ch[0]}},
                    {"conv_out.weight", {out_channels, ch[0], conv_out_kernel, conv_out_kernel}}};
  // The last resnet and transformer layer of each stage: they exist only if the file has as many layers.
  auto transformer = [&](const std::string& stage, int64_t layers, size_t block) {
    s.push_back({stage + ".transformer_blocks." + std::to_string(layers - 1) + ".attn2.to_k.weight", {ch[block], cross_attention_dim[block]}});
  };
  for (size_t i = 0; i < blocks; ++i) {
    const std::string stage = "down_blocks." + std::to_string(i);
    const int64_t last = layers_per_block[i] - 1;
    s.push_back({stage + ".resnets." + std::to_string(last) + ".conv1.weight", {ch[i], last == 0 ? ch[i == 0 ? 0 : i - 1] : ch[i], 3, 3}});
    if (down_block_types[i] == "CrossAttnDownBlock2D") transformer(stage + ".attentions." + std::to_string(last), transformer_layers_per_block[i], i);
  }
  transformer("mid_block.attentions.0", transformer_layers_per_block[blocks - 1], blocks - 1);
  for (size_t i = 0; i < blocks; ++i) {
    const size_t mirrored = blocks - 1 - i;
    const std::string stage = "up_blocks." + std::to_string(i);
    const std::string last = std::to_string(layers_per_block[mirrored]);  // up stages have one resnet more
    s.push_back({stage + ".resnets." + last + ".conv1.weight", {ch[mirrored], kAnySize, 3, 3}});
    if (up_block_types[i] == "CrossAttnUpBlock2D") transformer(stage + ".attentions." + last, reverse_transformer_layers[i], mirrored);
  }
  return s;
}

}  // namespace sdtune::models
