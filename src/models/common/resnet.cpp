#include "models/common/resnet.h"

#include <torch/torch.h>

namespace F = torch::nn::functional;

namespace sdtune::models {

Conv2d same_conv(int64_t in_channels, int64_t out_channels, int64_t kernel) {
  return Conv2d(Conv2dOptions{in_channels, out_channels, kernel});
}

static torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps));
}

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetOptions& o) : output_scale_factor_(o.output_scale_factor) {
  norm1_ = register_module("norm1", group_norm(o.groups, o.in_channels, o.eps));
  conv1_ = register_module("conv1", same_conv(o.in_channels, o.out_channels));
  if (o.temb_channels > 0) time_emb_proj_ = register_module("time_emb_proj", Linear(o.temb_channels, o.out_channels));
  norm2_ = register_module("norm2", group_norm(o.groups, o.out_channels, o.eps));
  conv2_ = register_module("conv2", same_conv(o.out_channels, o.out_channels));
  if (o.in_channels != o.out_channels)
    conv_shortcut_ = register_module("conv_shortcut", same_conv(o.in_channels, o.out_channels, 1));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  torch::Tensor h = conv1_(F::silu(norm1_(x)));
  if (time_emb_proj_ && temb.defined()) h = h + time_emb_proj_(F::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  h = conv2_(F::silu(norm2_(h)));
  torch::Tensor out = (conv_shortcut_ ? conv_shortcut_(x) : x) + h;
  return output_scale_factor_ == 1.0 ? out : out / output_scale_factor_;
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding) : padding_(padding) {
  conv_ = register_module("conv", Conv2d(Conv2dOptions{channels, channels, 3, 2, padding}));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding_ == 0) return conv_(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
  return conv_(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) { conv_ = register_module("conv", same_conv(channels, channels)); }

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& size) {
  auto options = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (size.empty())
    options.scale_factor(std::vector<double>{2.0, 2.0});
  else
    options.size(size);
  return conv_(F::interpolate(x, options));
}

}  // namespace sdtune::models
