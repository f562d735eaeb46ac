#include "models/clip_text.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"

namespace F = torch::nn::functional;

namespace sdtune::models {

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j, const std::string& where) {
  ClipTextConfig c;
  // Limits far above every CLIP text encoder (49408 tokens, width 1280, 32 layers, 77 positions),
  // checked before anything is allocated.
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"})
    io::config_required<int64_t>(j, key, where);
  c.vocab_size = io::config_value_in<int64_t>(j, "vocab_size", 0, where, 1, 1 << 20);
  c.hidden_size = io::config_value_in<int64_t>(j, "hidden_size", 0, where, 1, 16384);
  c.intermediate_size = io::config_value_in<int64_t>(j, "intermediate_size", 0, where, 1, 65536);
  c.num_hidden_layers = io::config_value_in<int64_t>(j, "num_hidden_layers", 0, where, 1, 256);
  c.num_attention_heads = io::config_value_in<int64_t>(j, "num_attention_heads", 0, where, 1, 1024);
  c.max_position_embeddings = io::config_value_in<int64_t>(j, "max_position_embeddings", 77, where, 1, 16384);
  c.layer_norm_eps = io::config_value<double>(j, "layer_norm_eps", 1e-5, where);
  if (!(c.layer_norm_eps > 0 && c.layer_norm_eps < 1)) throw Error(where, "config key \"layer_norm_eps\" must be between 0 and 1 (exclusive)");
  c.hidden_act = io::config_value<std::string>(j, "hidden_act", "quick_gelu", where);
  c.eos_token_id = io::config_value<int64_t>(j, "eos_token_id", 2, where);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw Error(where, "unsupported hidden_act " + in_quotes(c.hidden_act) + " (expected quick_gelu or gelu)");
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_hidden_layers <= 0 ||
      c.num_attention_heads <= 0 || c.max_position_embeddings <= 0 || c.hidden_size % c.num_attention_heads != 0)
    throw Error(where, "inconsistent sizes (hidden_size must be a positive multiple of num_attention_heads)");
  return c;
}

WeightSignature ClipTextConfig::weight_signature() const {
  return {{"embeddings.token_embedding.weight", {vocab_size, hidden_size}},
          {"embeddings.position_embedding.weight", {max_position_embeddings, hidden_size}},
          {"encoder.layers." + std::to_string(num_hidden_layers - 1) + ".mlp.fc1.weight", {intermediate_size, hidden_size}}};
}

static torch::nn::LayerNorm layer_norm(const ClipTextConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

ClipAttentionImpl::ClipAttentionImpl(const ClipTextConfig& c) : heads_(c.num_attention_heads) {
  q_proj_ = register_module("q_proj", Linear(c.hidden_size, c.hidden_size));
  k_proj_ = register_module("k_proj", Linear(c.hidden_size, c.hidden_size));
  v_proj_ = register_module("v_proj", Linear(c.hidden_size, c.hidden_size));
  out_proj_ = register_module("out_proj", Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
  const int64_t batch = x.size(0), tokens = x.size(1), width = x.size(2), head_dim = width / heads_;
  auto split_heads = [&](const torch::Tensor& t) { return t.view({batch, tokens, heads_, head_dim}).transpose(1, 2); };
  const torch::Tensor q = split_heads(q_proj_(x));
  const torch::Tensor k = split_heads(k_proj_(x));
  const torch::Tensor v = split_heads(v_proj_(x));
  torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)).mul_(1.0 / std::sqrt(double(head_dim)));
  scores = (scores + causal_mask).softmax(-1);
  const torch::Tensor out = torch::matmul(scores, v).transpose(1, 2).reshape({batch, tokens, width});
  return out_proj_(out);
}

ClipMlpImpl::ClipMlpImpl(const ClipTextConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
  fc1_ = register_module("fc1", Linear(c.hidden_size, c.intermediate_size));
  fc2_ = register_module("fc2", Linear(c.intermediate_size, c.hidden_size));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = fc1_(x);
  h = quick_gelu_ ? h * torch::sigmoid(1.702 * h) : F::gelu(h);
  return fc2_(h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c) {
  self_attn_ = register_module("self_attn", ClipAttention(c));
  layer_norm1_ = register_module("layer_norm1", layer_norm(c));
  mlp_ = register_module("mlp", ClipMlp(c));
  layer_norm2_ = register_module("layer_norm2", layer_norm(c));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
  const torch::Tensor h = x + self_attn_(layer_norm1_(x), causal_mask);
  return h + mlp_(layer_norm2_(h));
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& c) : config_(c) {
  // transformers nests these as embeddings.* and encoder.layers.*; mirror the names exactly.
  auto embeddings = register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding_ = embeddings->register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding_ =
      embeddings->register_module("position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(ClipEncoderLayer(c));
  final_layer_norm_ = register_module("final_layer_norm", layer_norm(c));
}

torch::Tensor ClipTextModelImpl::hidden_states(const torch::Tensor& input_ids, int64_t layers) {
  const int64_t tokens = input_ids.size(1);
  if (tokens > config_.max_position_embeddings)
    throw Error("text encoder", "sequence of " + std::to_string(tokens) + " tokens is longer than max_position_embeddings " +
                                    std::to_string(config_.max_position_embeddings));
  const auto weight = token_embedding_->weight;
  if (input_ids.numel() > 0 && (input_ids.min().item<int64_t>() < 0 || input_ids.max().item<int64_t>() >= config_.vocab_size))
    throw Error("text encoder", "token id outside the vocabulary of " + std::to_string(config_.vocab_size));
  const torch::Tensor positions = torch::arange(tokens, torch::dtype(torch::kLong).device(input_ids.device()));
  torch::Tensor h = token_embedding_(input_ids) + position_embedding_(positions);
  const torch::Tensor causal_mask =
      torch::full({tokens, tokens}, -std::numeric_limits<float>::infinity(), weight.options()).triu(1);
  for (int64_t i = 0; i < layers; ++i) h = layers_[i]->as<ClipEncoderLayer>()->forward(h, causal_mask);
  return h;
}

int64_t ClipTextModelImpl::append_token_embeddings(const torch::Tensor& rows) {
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == config_.hidden_size, "token embeddings must be [n, hidden_size]");
  torch::NoGradGuard no_grad;
  const int64_t first = config_.vocab_size;
  auto& weight = token_embedding_->weight;
  weight.set_data(torch::cat({weight, rows.to(weight.options())}));
  config_.vocab_size += rows.size(0);
  return first;
}

torch::Tensor ClipTextModelImpl::forward(const torch::Tensor& input_ids, int64_t skip_layers) {
  if (skip_layers < 0 || skip_layers >= config_.num_hidden_layers)
    throw Error("--clip_skip", "must be between 0 and " + std::to_string(config_.num_hidden_layers - 1) +
                                   " for this " + std::to_string(config_.num_hidden_layers) + "-layer text encoder");
  return final_layer_norm_(hidden_states(input_ids, config_.num_hidden_layers - skip_layers));
}

torch::Tensor ClipTextModelImpl::pooled(const torch::Tensor& last_hidden_state, const torch::Tensor& input_ids) const {
  // transformers: legacy configs (eos_token_id == 2) take the highest id; others the first EOS.
  const torch::Tensor eos_position = config_.eos_token_id == 2
                                         ? input_ids.argmax(-1)
                                         : (input_ids == config_.eos_token_id).to(torch::kInt).argmax(-1);
  const torch::Tensor rows = torch::arange(last_hidden_state.size(0), eos_position.options());
  return last_hidden_state.index({rows, eos_position});
}

}  // namespace sdtune::models
