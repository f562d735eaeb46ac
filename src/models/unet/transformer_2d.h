// diffusers' Transformer2DModel as used by SD 1.x/2.x: GroupNorm, proj_in (1x1 conv or linear),
// BasicTransformerBlocks (self-attention, cross-attention to the text, GEGLU feed-forward), proj_out,
// residual.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include "models/common/linear.h"
#include <torch/nn/modules/normalization.h>

#include "models/common/attention.h"

namespace sdtune::models {

struct TransformerOptions {
  int64_t channels;       // in/out channels of the block
  int64_t heads;
  int64_t head_dim;
  int64_t context_dim;    // cross_attention_dim
  int64_t layers = 1;     // transformer_layers_per_block
  int64_t groups = 32;    // GroupNorm groups
  bool linear_projection = false;
  bool only_cross_attention = false;
  bool upcast_attention = false;
};

// hidden * gelu(gate), both halves of one projection.
class GegluImpl : public torch::nn::Module {
 public:
  GegluImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  Linear proj_{nullptr};
};
TORCH_MODULE(Geglu);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  bool only_cross_attention_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  Attention attn1_{nullptr}, attn2_{nullptr};
  Geglu geglu_{nullptr};
  Linear ff_out_{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

class Transformer2DImpl : public torch::nn::Module {
 public:
  explicit Transformer2DImpl(const TransformerOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

 private:
  bool linear_projection_;
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::AnyModule proj_in_, proj_out_;  // Linear or 1x1 Conv2d
  torch::nn::ModuleList blocks_{nullptr};
};
TORCH_MODULE(Transformer2D);

}  // namespace sdtune::models
