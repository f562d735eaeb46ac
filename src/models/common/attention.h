// Multi-head attention as diffusers' Attention module (to_q, to_k, to_v, to_out.0), and the
// memory-lean kernel every attention in sdtune runs through.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include "models/common/linear.h"
#include <torch/nn/modules/normalization.h>

#include "models/common/adaptable_linear.h"

namespace sdtune::models {

// softmax(q k^T * scale) v for q [B, H, Nq, D], k/v [B, H, Nk, D]. On LibTorch >= 2 this is
// scaled_dot_product_attention (flash / memory-efficient kernels on CUDA); on 1.13 the queries are
// processed in slices so that the score matrix of one slice stays under a fixed budget, with the scores
// and softmax of half-precision inputs in fp32. `upcast` (diffusers' upcast_attention) keeps fp16 on the
// CPU on that path.
torch::Tensor attention_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool upcast);

struct AttentionOptions {
  int64_t query_dim;
  int64_t context_dim;  // = query_dim for self-attention
  int64_t heads;
  int64_t head_dim;
  bool qkv_bias = false;
  bool upcast = false;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  // x [B, N, query_dim]; context [B, M, context_dim], or undefined for self-attention.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});

 private:
  AttentionOptions options_;
  // Projections that LoRA adapts (to_q, to_k, to_v, to_out.0).
  AdaptableLinear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, to_out_0_{nullptr};
};
TORCH_MODULE(Attention);

// The VAE's single-head spatial self-attention: GroupNorm, attention over pixels, residual.
class SpatialSelfAttentionImpl : public torch::nn::Module {
 public:
  SpatialSelfAttentionImpl(int64_t channels, int64_t groups, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W]

 private:
  torch::nn::GroupNorm group_norm_{nullptr};
  Attention attention_{nullptr};
};
TORCH_MODULE(SpatialSelfAttention);

}  // namespace sdtune::models
