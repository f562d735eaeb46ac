#include "models/unet/transformer_2d.h"

#include <torch/torch.h>

#include "models/common/conv2d.h"

namespace F = torch::nn::functional;

namespace sdtune::models {

GegluImpl::GegluImpl(int64_t dim_in, int64_t dim_out) {
  proj_ = register_module("proj", Linear(dim_in, dim_out * 2));
}

torch::Tensor GegluImpl::forward(const torch::Tensor& x) {
  const auto halves = proj_(x).chunk(2, -1);
  return halves[0] * F::gelu(halves[1]);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const TransformerOptions& o) : only_cross_attention_(o.only_cross_attention) {
  const int64_t dim = o.heads * o.head_dim;
  auto layer_norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)); };
  norm1_ = register_module("norm1", layer_norm());
  attn1_ = register_module("attn1", Attention(AttentionOptions{dim, o.only_cross_attention ? o.context_dim : dim, o.heads,
                                                               o.head_dim, false, o.upcast_attention}));
  norm2_ = register_module("norm2", layer_norm());
  attn2_ = register_module("attn2", Attention(AttentionOptions{dim, o.context_dim, o.heads, o.head_dim, false, o.upcast_attention}));
  norm3_ = register_module("norm3", layer_norm());
  // diffusers' FeedForward: net.0 = GEGLU, net.1 = dropout, net.2 = output Linear.
  auto ff = register_module("ff", std::make_shared<torch::nn::Module>());
  geglu_ = Geglu(dim, 4 * dim);
  ff_out_ = Linear(4 * dim, dim);
  ff->register_module("net", torch::nn::ModuleList(geglu_, torch::nn::Dropout(0.0), ff_out_));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  torch::Tensor h = x + attn1_(norm1_(x), only_cross_attention_ ? context : torch::Tensor());
  h = h + attn2_(norm2_(h), context);
  return h + ff_out_(geglu_(norm3_(h)));
}

Transformer2DImpl::Transformer2DImpl(const TransformerOptions& o) : linear_projection_(o.linear_projection) {
  const int64_t inner = o.heads * o.head_dim;
  norm_ = register_module("norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(o.groups, o.channels).eps(1e-6)));
  if (o.linear_projection) {
    proj_in_ = torch::nn::AnyModule(register_module("proj_in", Linear(o.channels, inner)));
  } else {
    proj_in_ = torch::nn::AnyModule(register_module("proj_in", Conv2d(Conv2dOptions{o.channels, inner, 1})));
  }
  blocks_ = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) blocks_->push_back(BasicTransformerBlock(o));
  if (o.linear_projection) {
    proj_out_ = torch::nn::AnyModule(register_module("proj_out", Linear(inner, o.channels)));
  } else {
    proj_out_ = torch::nn::AnyModule(register_module("proj_out", Conv2d(Conv2dOptions{inner, o.channels, 1})));
  }
}

torch::Tensor Transformer2DImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const int64_t batch = x.size(0), height = x.size(2), width = x.size(3);
  auto to_tokens = [&](const torch::Tensor& t) { return t.permute({0, 2, 3, 1}).reshape({batch, height * width, t.size(1)}); };
  auto to_image = [&](const torch::Tensor& t) { return t.reshape({batch, height, width, t.size(2)}).permute({0, 3, 1, 2}); };
  torch::Tensor h = norm_(x);
  h = linear_projection_ ? proj_in_.forward(to_tokens(h)) : to_tokens(proj_in_.forward(h));
  for (const auto& block : *blocks_) h = block->as<BasicTransformerBlock>()->forward(h, context);
  h = linear_projection_ ? to_image(proj_out_.forward(h)) : proj_out_.forward(to_image(h).contiguous());
  return h + x;
}

}  // namespace sdtune::models
