#include "models/common/attention.h"

#include <torch/torch.h>

#include "core/torch_compat.h"

namespace sdtune::models {

namespace {

// Largest score matrix (bytes) one slice may build on the slicing path: scores and softmax of one
// slice then take ~128 MB at SD's 512² (4096 queries), and slices of ~400 queries lose no speed.
constexpr int64_t kScoreBudgetBytes = int64_t(64) << 20;

// Half-precision scores and softmax are always taken in fp32, as the fused kernels accumulate them
// (LibTorch 1.13, bf16, tiny SD 2 fixture: max image error 8.9/255 with bf16 scores, 7.9 with fp32;
// tests/test_precision.cpp). That is also what diffusers' upcast_attention asks for.
torch::Tensor sliced_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));
  const bool to_float = q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kHalf;
  const torch::Tensor kt = (to_float ? k.to(torch::kFloat) : k).transpose(-1, -2);
  const int64_t queries = q.size(2);
  const int64_t row_bytes = q.size(0) * q.size(1) * k.size(2) * int64_t(to_float ? 4 : q.element_size());
  const int64_t slice = std::max<int64_t>(1, std::min<int64_t>(queries, kScoreBudgetBytes / std::max<int64_t>(row_bytes, 1)));
  std::vector<torch::Tensor> outputs;
  for (int64_t start = 0; start < queries; start += slice) {
    torch::Tensor qs = q.slice(2, start, std::min(queries, start + slice));
    if (to_float) qs = qs.to(torch::kFloat);
    torch::Tensor probs = torch::matmul(qs, kt).mul_(scale).softmax(-1);
    if (to_float) probs = probs.to(v.scalar_type());
    outputs.push_back(torch::matmul(probs, v));
  }
  return outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 2);
}

}  // namespace

torch::Tensor attention_kernel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool upcast) {
  // fp16 on the CPU with upcast keeps the sliced path, whose scores are fp32.
  if (compat::kHasFusedAttention && !(upcast && q.scalar_type() == torch::kHalf && q.device().is_cpu()))
    return compat::fused_attention(q, k, v);
  return sliced_attention(q, k, v);
}

AttentionImpl::AttentionImpl(const AttentionOptions& o) : options_(o) {
  const int64_t inner = o.heads * o.head_dim;
  to_q_ = register_module("to_q", AdaptableLinear(o.query_dim, inner, o.qkv_bias));
  to_k_ = register_module("to_k", AdaptableLinear(o.context_dim, inner, o.qkv_bias));
  to_v_ = register_module("to_v", AdaptableLinear(o.context_dim, inner, o.qkv_bias));
  to_out_0_ = AdaptableLinear(inner, o.query_dim);  // diffusers' to_out = [Linear, Dropout]
  register_module("to_out", torch::nn::ModuleList(to_out_0_));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const torch::Tensor& source = context.defined() ? context : x;
  const int64_t batch = x.size(0), heads = options_.heads, head_dim = options_.head_dim;
  auto split_heads = [&](const torch::Tensor& t) { return t.view({batch, -1, heads, head_dim}).transpose(1, 2); };
  const torch::Tensor out = attention_kernel(split_heads(to_q_(x)), split_heads(to_k_(source)), split_heads(to_v_(source)),
                                             options_.upcast);
  return to_out_0_(out.transpose(1, 2).reshape({batch, -1, heads * head_dim}));
}

SpatialSelfAttentionImpl::SpatialSelfAttentionImpl(int64_t channels, int64_t groups, double eps) {
  group_norm_ = register_module("group_norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps)));
  // Registered under the same names as diffusers' Attention (to_q, ..., group_norm) by sharing this module.
  attention_ = Attention(AttentionOptions{channels, channels, 1, channels, /*qkv_bias=*/true, /*upcast=*/true});
  for (const auto& child : attention_->named_children()) register_module(child.key(), child.value());
}

torch::Tensor SpatialSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const torch::Tensor tokens = group_norm_(x).view({batch, channels, height * width}).transpose(1, 2);
  const torch::Tensor out = attention_->forward(tokens);
  return out.transpose(1, 2).reshape({batch, channels, height, width}) + x;
}

}  // namespace sdtune::models
