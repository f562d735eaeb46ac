// A square-kernel 2-D convolution layer with diffusers' parameter names (weight
// [out, in, k, k], bias [out]). Under inference mode on the CPU it runs through
// oneDNN directly (kernels/onednn_convolution.h: no per-call weight reorder,
// Winograd for 3x3 layers with many pixels); otherwise, and whenever a gradient
// is needed, it is aten::conv2d.
#pragma once
#include <torch/nn/module.h>

#include <memory>

#include "kernels/onednn_convolution.h"

namespace sdtune::models {

struct Conv2dOptions {
  int64_t in_channels;
  int64_t out_channels;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = -1;  // -1: "same" padding for stride 1, (kernel - 1) / 2
};

class Conv2dImpl : public torch::nn::Module {
 public:
  explicit Conv2dImpl(const Conv2dOptions &options);
  torch::Tensor forward(const torch::Tensor &x);

  // Frees what the oneDNN path keeps between calls (packed Winograd weights,
  // plans).
  void release_packed_weights();
  bool used_winograd() const { return onednn_->used_winograd(); }
  const kernels::ConvolutionShape &shape() const { return shape_; }

  torch::Tensor weight, bias;

 private:
  kernels::ConvolutionShape shape_;
  std::shared_ptr<kernels::OneDnnConvolution> onednn_;
};
TORCH_MODULE(Conv2d);

// Calls release_packed_weights on every Conv2d inside `root` (after validation
// images in training).
void release_packed_weights(torch::nn::Module &root);

// Stores every Conv2d weight inside `root` channels-last (NHWC), so convolutions
// produce channels-last activations and cuDNN takes its NHWC kernels on CUDA (as
// diffusers' unet.to(memory_format=torch.channels_last)). The oneDNN CPU path
// then declines and aten runs.
void use_channels_last(torch::nn::Module &root);

}  // namespace sdtune::models
