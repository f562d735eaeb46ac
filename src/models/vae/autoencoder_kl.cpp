#include "models/vae/autoencoder_kl.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"
#include "models/vae/tiling.h"

namespace F = torch::nn::functional;

namespace sdtune::models {

namespace {

constexpr double kVaeEps = 1e-6;  // diffusers hard-codes the VAE's GroupNorm eps

torch::nn::GroupNorm vae_norm(int64_t groups, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kVaeEps));
}

ResnetBlock2D vae_resnet(int64_t in_channels, int64_t out_channels, int64_t groups) {
  ResnetOptions o{in_channels, out_channels};
  o.groups = groups;
  o.eps = kVaeEps;
  return ResnetBlock2D(o);
}

LatentDistribution distribution_from(const torch::Tensor& moments) {
  const auto halves = moments.chunk(2, 1);
  LatentDistribution d;
  d.mean = halves[0];
  d.logvar = halves[1].clamp(-30.0, 20.0);
  d.std = torch::exp(0.5 * d.logvar);
  return d;
}

}  // namespace

VaeConfig VaeConfig::from_json(const nlohmann::json& j, const std::string& where) {
  VaeConfig c;
  // Limits far above every SD VAE (512 channels, 4 blocks, 2 layers), checked before anything is allocated.
  c.in_channels = io::config_value_in<int64_t>(j, "in_channels", 3, where, 1, 64);
  c.out_channels = io::config_value_in<int64_t>(j, "out_channels", 3, where, 1, 64);
  c.latent_channels = io::config_value_in<int64_t>(j, "latent_channels", 4, where, 1, 256);
  c.block_out_channels = io::config_value<std::vector<int64_t>>(j, "block_out_channels", c.block_out_channels, where);
  c.layers_per_block = io::config_value_in<int64_t>(j, "layers_per_block", 2, where, 1, 64);
  c.norm_num_groups = io::config_value_in<int64_t>(j, "norm_num_groups", 32, where, 1, 16384);
  if (j.contains("sample_size") && j["sample_size"].is_array()) {
    const auto sizes = io::config_value<std::vector<int64_t>>(j, "sample_size", {512}, where);
    c.sample_size = sizes.empty() ? 0 : sizes[0];
  } else {
    c.sample_size = io::config_value<int64_t>(j, "sample_size", 512, where);
  }
  if (c.sample_size < 8 || c.sample_size > 16384) throw Error(where, "config key \"sample_size\" must be between 8 and 16384");
  c.scaling_factor = io::config_value<double>(j, "scaling_factor", 0.18215, where);
  if (!(c.scaling_factor > 0)) throw Error(where, "config key \"scaling_factor\" must be a positive number");
  c.use_quant_conv = io::config_value<bool>(j, "use_quant_conv", true, where);
  c.use_post_quant_conv = io::config_value<bool>(j, "use_post_quant_conv", true, where);
  c.mid_block_add_attention = io::config_value<bool>(j, "mid_block_add_attention", true, where);
  c.force_upcast = io::config_value<bool>(j, "force_upcast", true, where);
  if (c.block_out_channels.empty() || c.block_out_channels.size() > 8) throw Error(where, "block_out_channels must have 1 to 8 entries");
  for (int64_t ch : c.block_out_channels)
    if (ch <= 0 || ch > 16384 || ch % c.norm_num_groups != 0)
      throw Error(where, "block_out_channels must be multiples of norm_num_groups, at most 16384");
  if (c.layers_per_block <= 0 || c.latent_channels <= 0) throw Error(where, "layers_per_block and latent_channels must be positive");
  if (j.contains("shift_factor") && !j["shift_factor"].is_null()) throw Error(where, "unsupported VAE config shift_factor (not an SD 1.x/2.x VAE)");
  for (const char* key : {"down_block_types", "up_block_types"})
    for (const auto& t : io::config_value<std::vector<std::string>>(j, key, {}, where))
      if (t != "DownEncoderBlock2D" && t != "UpDecoderBlock2D") throw Error(where, std::string("unsupported ") + key + " " + in_quotes(t));
  return c;
}

WeightSignature VaeConfig::weight_signature() const {
  const auto& ch = block_out_channels;
  const int64_t first = ch.front(), last = ch.back();
  WeightSignature s{{"encoder.conv_in.weight", {first, in_channels, 3, 3}},
                    {"encoder.conv_out.weight", {2 * latent_channels, last, 3, 3}},
                    {"decoder.conv_in.weight", {last, latent_channels, 3, 3}},
                    {"decoder.conv_out.weight", {out_channels, first, 3, 3}}};
  // The last resnet of each stage exists only if the file has as many layers (decoder stages have one more).
  for (size_t i = 0; i < ch.size(); ++i) {
    const int64_t in = layers_per_block == 1 ? ch[i == 0 ? 0 : i - 1] : ch[i];
    s.push_back({"encoder.down_blocks." + std::to_string(i) + ".resnets." + std::to_string(layers_per_block - 1) + ".conv1.weight", {ch[i], in, 3, 3}});
    const size_t mirrored = ch.size() - 1 - i;
    s.push_back({"decoder.up_blocks." + std::to_string(i) + ".resnets." + std::to_string(layers_per_block) + ".conv1.weight",
                 {ch[mirrored], ch[mirrored], 3, 3}});
  }
  return s;
}

VaeStageImpl::VaeStageImpl(int64_t in_channels, int64_t out_channels, int64_t layers, int64_t groups, Resample resample) {
  resnets_ = register_module("resnets", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) resnets_->push_back(vae_resnet(i == 0 ? in_channels : out_channels, out_channels, groups));
  if (resample == Resample::Down) downsamplers_ = register_module("downsamplers", torch::nn::ModuleList(Downsample2D(out_channels, 0)));
  if (resample == Resample::Up) upsamplers_ = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(out_channels)));
}

torch::Tensor VaeStageImpl::forward(torch::Tensor x) {
  for (const auto& r : *resnets_) x = r->as<ResnetBlock2D>()->forward(x);
  if (downsamplers_) x = downsamplers_[0]->as<Downsample2D>()->forward(x);
  if (upsamplers_) x = upsamplers_[0]->as<Upsample2D>()->forward(x);
  return x;
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups, bool attention) {
  resnets_ = register_module("resnets", torch::nn::ModuleList(vae_resnet(channels, channels, groups), vae_resnet(channels, channels, groups)));
  if (attention) attentions_ = register_module("attentions", torch::nn::ModuleList(SpatialSelfAttention(channels, groups, kVaeEps)));
}

torch::Tensor VaeMidBlockImpl::forward(torch::Tensor x) {
  x = resnets_[0]->as<ResnetBlock2D>()->forward(x);
  if (attentions_) x = attentions_[0]->as<SpatialSelfAttention>()->forward(x);
  return resnets_[1]->as<ResnetBlock2D>()->forward(x);
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c) {
  const auto& ch = c.block_out_channels;
  conv_in_ = register_module("conv_in", same_conv(c.in_channels, ch[0]));
  down_blocks_ = register_module("down_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < ch.size(); ++i)
    down_blocks_->push_back(VaeStage(i == 0 ? ch[0] : ch[i - 1], ch[i], c.layers_per_block, c.norm_num_groups,
                                     i + 1 < ch.size() ? Resample::Down : Resample::None));
  mid_block_ = register_module("mid_block", VaeMidBlock(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
  conv_norm_out_ = register_module("conv_norm_out", vae_norm(c.norm_num_groups, ch.back()));
  conv_out_ = register_module("conv_out", same_conv(ch.back(), 2 * c.latent_channels));
}

torch::Tensor VaeEncoderImpl::forward(const torch::Tensor& image) {
  torch::Tensor x = conv_in_(image);
  for (const auto& block : *down_blocks_) x = block->as<VaeStage>()->forward(x);
  x = mid_block_(x);
  return conv_out_(F::silu(conv_norm_out_(x)));
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c) {
  const auto& ch = c.block_out_channels;
  conv_in_ = register_module("conv_in", same_conv(c.latent_channels, ch.back()));
  mid_block_ = register_module("mid_block", VaeMidBlock(ch.back(), c.norm_num_groups, c.mid_block_add_attention));
  up_blocks_ = register_module("up_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < ch.size(); ++i) {
    const size_t mirrored = ch.size() - 1 - i;
    up_blocks_->push_back(VaeStage(ch[std::min(mirrored + 1, ch.size() - 1)], ch[mirrored], c.layers_per_block + 1,
                                   c.norm_num_groups, i + 1 < ch.size() ? Resample::Up : Resample::None));
  }
  conv_norm_out_ = register_module("conv_norm_out", vae_norm(c.norm_num_groups, ch[0]));
  conv_out_ = register_module("conv_out", same_conv(ch[0], c.out_channels));
}

torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& latents) {
  torch::Tensor x = mid_block_(conv_in_(latents));
  for (const auto& block : *up_blocks_) x = block->as<VaeStage>()->forward(x);
  return conv_out_(F::silu(conv_norm_out_(x)));
}

torch::Tensor LatentDistribution::sample(c10::optional<at::Generator> generator) const {
  const torch::Tensor noise = at::randn(mean.sizes(), generator, mean.options().device(torch::kCPU)).to(mean.device());
  return mean + std * noise;
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& c) : config_(c) {
  encoder_ = register_module("encoder", VaeEncoder(c));
  decoder_ = register_module("decoder", VaeDecoder(c));
  if (c.use_quant_conv) quant_conv_ = register_module("quant_conv", same_conv(2 * c.latent_channels, 2 * c.latent_channels, 1));
  if (c.use_post_quant_conv) post_quant_conv_ = register_module("post_quant_conv", same_conv(c.latent_channels, c.latent_channels, 1));
}

torch::Tensor AutoencoderKLImpl::encode_moments(const torch::Tensor& image) {
  torch::Tensor moments = encoder_(image);
  return quant_conv_ ? quant_conv_(moments) : moments;
}

torch::Tensor AutoencoderKLImpl::decode_raw(const torch::Tensor& latents) {
  return decoder_(post_quant_conv_ ? post_quant_conv_(latents) : latents);
}

LatentDistribution AutoencoderKLImpl::encode(const torch::Tensor& image) { return distribution_from(encode_moments(image)); }

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latents) { return decode_raw(latents); }

LatentDistribution AutoencoderKLImpl::tiled_encode(const torch::Tensor& image, const TilingOptions& tiling) {
  const int64_t tile = tiling.tile_sample_size > 0 ? tiling.tile_sample_size : config_.sample_size;
  return distribution_from(run_tiled(image, tile, tile / config_.downscale_factor(), tiling.overlap,
                                     [this](const torch::Tensor& t) { return encode_moments(t); }));
}

torch::Tensor AutoencoderKLImpl::tiled_decode(const torch::Tensor& latents, const TilingOptions& tiling) {
  const int64_t tile = tiling.tile_sample_size > 0 ? tiling.tile_sample_size : config_.sample_size;
  return run_tiled(latents, tile / config_.downscale_factor(), tile, tiling.overlap,
                   [this](const torch::Tensor& t) { return decode_raw(t); });
}

}  // namespace sdtune::models
