// AutoencoderKL (the SD VAE): Encoder -> quant_conv -> diagonal Gaussian over latents;
// post_quant_conv -> Decoder. Built from the vae/config.json values. Tiled encode/decode keep the
// memory of large images bounded.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>

#include <string>

#include "models/common/weight_signature.h"
#include <vector>

#include "models/common/attention.h"
#include "models/common/resnet.h"

namespace sdtune::models {

struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 512;
  double scaling_factor = 0.18215;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
  bool force_upcast = true;  // run in fp32 when the pipeline runs in fp16 (SD 2's VAE overflows in fp16)

  int64_t downscale_factor() const { return int64_t(1) << (block_out_channels.size() - 1); }
  static VaeConfig from_json(const nlohmann::json& config, const std::string& where);
  // Tensors (names inside the component) whose shapes this config fixes.
  WeightSignature weight_signature() const;
};

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional stride-2 downsampler or x2 upsampler.
enum class Resample { None, Down, Up };

class VaeStageImpl : public torch::nn::Module {
 public:
  VaeStageImpl(int64_t in_channels, int64_t out_channels, int64_t layers, int64_t groups, Resample resample);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::ModuleList resnets_{nullptr}, downsamplers_{nullptr}, upsamplers_{nullptr};
};
TORCH_MODULE(VaeStage);

// UNetMidBlock2D of the VAE: resnet, (self-attention), resnet.
class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, int64_t groups, bool attention);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::ModuleList resnets_{nullptr}, attentions_{nullptr};
};
TORCH_MODULE(VaeMidBlock);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& config);
  torch::Tensor forward(const torch::Tensor& image);  // [B, 3, H, W] -> moments before quant_conv

 private:
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::ModuleList down_blocks_{nullptr};
  VaeMidBlock mid_block_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& config);
  torch::Tensor forward(const torch::Tensor& latents);

 private:
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  VaeMidBlock mid_block_{nullptr};
  torch::nn::ModuleList up_blocks_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
};
TORCH_MODULE(VaeDecoder);

struct LatentDistribution {
  torch::Tensor mean, logvar, std;  // logvar clamped to [-30, 20]
  // mean + std * N(0, 1) drawn from `generator` (CPU, like diffusers' torch.Generator).
  torch::Tensor sample(c10::optional<at::Generator> generator = c10::nullopt) const;
};

struct TilingOptions {
  int64_t tile_sample_size = 0;  // 0: the config's sample_size
  double overlap = 0.25;         // diffusers' tile_overlap_factor
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& config);

  LatentDistribution encode(const torch::Tensor& image);  // image in [-1, 1]
  torch::Tensor decode(const torch::Tensor& latents);     // raw latents (already / scaling_factor)

  // The same, tile by tile with blended overlaps (diffusers' tiled_encode / tiled_decode), for
  // images larger than one tile.
  LatentDistribution tiled_encode(const torch::Tensor& image, const TilingOptions& tiling = {});
  torch::Tensor tiled_decode(const torch::Tensor& latents, const TilingOptions& tiling = {});

  const VaeConfig& config() const { return config_; }

 private:
  torch::Tensor encode_moments(const torch::Tensor& image);
  torch::Tensor decode_raw(const torch::Tensor& latents);

  VaeConfig config_;
  VaeEncoder encoder_{nullptr};
  VaeDecoder decoder_{nullptr};
  Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

}  // namespace sdtune::models
