// The convolutional building blocks shared by the UNet and the VAE (diffusers' resnet.py,
// downsampling.py, upsampling.py): ResnetBlock2D, Downsample2D, Upsample2D.
#pragma once
#include <torch/nn/module.h>
#include "models/common/linear.h"
#include <torch/nn/modules/normalization.h>

#include <vector>

#include "models/common/conv2d.h"

namespace sdtune::models {

struct ResnetOptions {
  int64_t in_channels;
  int64_t out_channels;
  int64_t temb_channels = 0;  // 0: no time embedding (VAE)
  int64_t groups = 32;
  double eps = 1e-6;
  double output_scale_factor = 1.0;
};

// GroupNorm-SiLU-Conv, + time embedding, GroupNorm-SiLU-Conv, + (1x1-projected) input.
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

 private:
  double output_scale_factor_;
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  Conv2d conv1_{nullptr}, conv2_{nullptr}, conv_shortcut_{nullptr};
  Linear time_emb_proj_{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Stride-2 3x3 convolution. padding 0 pads one pixel right and bottom first (the VAE's layout).
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t padding_;
  Conv2d conv_{nullptr};
};
TORCH_MODULE(Downsample2D);

// Nearest-neighbour x2 (or to `size`, for odd skip connections), then a 3x3 convolution.
class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& size = {});

 private:
  Conv2d conv_{nullptr};
};
TORCH_MODULE(Upsample2D);

// A 3x3 (or k x k) "same" convolution, the most common layer here.
Conv2d same_conv(int64_t in_channels, int64_t out_channels, int64_t kernel = 3);

}  // namespace sdtune::models
