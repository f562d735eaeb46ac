#include "models/unet/unet_2d_condition.h"

#include <torch/torch.h>

#include "core/error.h"

namespace F = torch::nn::functional;

namespace sdtune::models {

torch::Tensor timestep_features(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  const int64_t half = dim / 2;
  const auto f32 = torch::dtype(torch::kFloat).device(timesteps.device());
  const torch::Tensor exponent = torch::arange(half, f32) * float(-std::log(10000.0)) / float(half - freq_shift);
  const torch::Tensor angles = timesteps.to(torch::kFloat).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
  torch::Tensor emb = flip_sin_to_cos ? torch::cat({torch::cos(angles), torch::sin(angles)}, -1)
                                      : torch::cat({torch::sin(angles), torch::cos(angles)}, -1);
  if (dim % 2 == 1) emb = F::pad(emb, F::PadFuncOptions({0, 1, 0, 0}));
  return emb;
}

UNet2DConditionImpl::UNet2DConditionImpl(const UNetConfig& c) : config_(c) {
  const auto& channels = c.block_out_channels;
  const size_t blocks = channels.size();
  const int64_t temb = c.time_embedding_dim;
  auto time_embedding = register_module("time_embedding", std::make_shared<torch::nn::Module>());
  time_linear_1_ = time_embedding->register_module("linear_1", Linear(channels[0], temb));
  time_linear_2_ = time_embedding->register_module("linear_2", Linear(temb, temb));
  conv_in_ = register_module("conv_in", same_conv(c.in_channels, channels[0], c.conv_in_kernel));

  auto stage_options = [&](size_t config_block) {
    StageOptions o{};
    o.temb_channels = temb;
    o.downsample_padding = c.downsample_padding;
    o.resnet.groups = c.norm_num_groups;
    o.resnet.eps = c.norm_eps;
    o.transformer.heads = c.heads[config_block];
    o.transformer.context_dim = c.cross_attention_dim[config_block];
    o.transformer.layers = c.transformer_layers_per_block[config_block];
    o.transformer.groups = c.norm_num_groups;
    o.transformer.linear_projection = c.use_linear_projection;
    o.transformer.only_cross_attention = c.only_cross_attention[config_block];
    o.transformer.upcast_attention = c.upcast_attention;
    return o;
  };

  down_blocks_ = register_module("down_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < blocks; ++i) {
    StageOptions o = stage_options(i);
    o.in_channels = i == 0 ? channels[0] : channels[i - 1];
    o.out_channels = channels[i];
    o.layers = c.layers_per_block[i];
    o.cross_attention = c.down_block_types[i] == "CrossAttnDownBlock2D";
    o.resample = i + 1 < blocks;
    down_blocks_->push_back(DownStage(o));
  }

  StageOptions mid = stage_options(blocks - 1);
  mid.in_channels = mid.out_channels = channels.back();
  mid.layers = 1;
  mid.cross_attention = true;
  mid.resample = false;
  mid.resnet.output_scale_factor = c.mid_block_scale_factor;
  mid_block_ = register_module("mid_block", MidStage(mid));

  // Up stages mirror the down stages: per-block settings are read in reverse.
  up_blocks_ = register_module("up_blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < blocks; ++i) {
    const size_t mirrored = blocks - 1 - i;
    StageOptions o = stage_options(mirrored);
    o.transformer.layers = c.reverse_transformer_layers[i];
    o.prev_output_channels = channels[std::min(mirrored + 1, blocks - 1)];
    o.out_channels = channels[mirrored];
    o.in_channels = channels[mirrored == 0 ? 0 : mirrored - 1];
    o.layers = c.layers_per_block[mirrored] + 1;
    o.cross_attention = c.up_block_types[i] == "CrossAttnUpBlock2D";
    o.resample = i + 1 < blocks;
    up_blocks_->push_back(UpStage(o));
  }

  conv_norm_out_ = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, channels[0]).eps(c.norm_eps)));
  conv_out_ = register_module("conv_out", same_conv(channels[0], c.out_channels, c.conv_out_kernel));
}

torch::Tensor UNet2DConditionImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                           const torch::Tensor& context) {
  if (sample.dim() != 4 || sample.size(1) != config_.in_channels)
    throw Error("unet", "sample must be [B, " + std::to_string(config_.in_channels) + ", H, W]");
  const int64_t batch = sample.size(0);
  const torch::Tensor timesteps = (timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep).expand({batch});
  const torch::Tensor t_features = timestep_features(timesteps, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                                     config_.freq_shift).to(sample.scalar_type());
  const torch::Tensor temb = time_linear_2_(F::silu(time_linear_1_(t_features)));

  torch::Tensor x = config_.center_input_sample ? 2 * sample - 1.0 : sample;
  x = conv_in_(x);
  std::vector<torch::Tensor> skips{x};
  for (const auto& block : *down_blocks_) x = block->as<DownStage>()->forward(x, temb, context, &skips);
  x = mid_block_(x, temb, context);
  for (size_t i = 0; i < up_blocks_->size(); ++i) {
    auto stage = up_blocks_[i]->as<UpStage>();
    // The skip that the upsampled output meets next decides the upsampled size (odd sizes).
    std::vector<int64_t> upsample_size;
    if (i + 1 < up_blocks_->size()) {
      const auto& next_skip = skips[skips.size() - size_t(stage->layers()) - 1];
      upsample_size = {next_skip.size(2), next_skip.size(3)};
    }
    x = stage->forward(x, temb, context, &skips, upsample_size);
  }
  return conv_out_(F::silu(conv_norm_out_(x)));
}

void UNet2DConditionImpl::set_gradient_checkpointing(bool on) {
  for (auto& module : modules())
    if (auto* stage = dynamic_cast<StageBase*>(module.get())) stage->gradient_checkpointing = on;
}

}  // namespace sdtune::models
