// UNet2DConditionModel (SD 1.x / 2.x): timestep embedding, conv_in, down stages, middle stage, up
// stages with skip connections, GroupNorm-SiLU-conv_out. Built entirely from UNetConfig.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include "models/common/linear.h"
#include <torch/nn/modules/normalization.h>

#include "models/unet/unet_blocks.h"
#include "models/unet/unet_config.h"

namespace sdtune::models {

// Sinusoidal timestep features as diffusers' get_timestep_embedding, computed in fp32.
torch::Tensor timestep_features(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

class UNet2DConditionImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionImpl(const UNetConfig& config);

  // sample [B, C, H, W]; timestep 0-d or [B], integer or float; context [B, 77*k, cross_attention_dim].
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& context);

  const UNetConfig& config() const { return config_; }
  // Training: recompute each resnet's and transformer's activations in backward instead of keeping them.
  void set_gradient_checkpointing(bool on);

 private:
  UNetConfig config_;
  Linear time_linear_1_{nullptr}, time_linear_2_{nullptr};
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  torch::nn::ModuleList down_blocks_{nullptr}, up_blocks_{nullptr};
  MidStage mid_block_{nullptr};
};
TORCH_MODULE(UNet2DCondition);

}  // namespace sdtune::models
