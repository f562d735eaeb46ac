// CLIPTextModel (transformers): token + position embeddings, pre-LayerNorm transformer layers with a
// causal mask, final LayerNorm. Parameter names follow transformers' "text_model.*" keys.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include "models/common/linear.h"
#include <torch/nn/modules/normalization.h>

#include <string>

#include "models/common/weight_signature.h"

namespace sdtune::models {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  int64_t eos_token_id = 2;

  // From a text_encoder/config.json object; `where` names it in errors.
  static ClipTextConfig from_json(const nlohmann::json& config, const std::string& where);
  // Tensors (names inside the component) whose shapes this config fixes.
  WeightSignature weight_signature() const;
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

 private:
  int64_t heads_;
  Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  explicit ClipMlpImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool quick_gelu_;
  Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

 private:
  torch::nn::LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
  ClipAttention self_attn_{nullptr};
  ClipMlp mlp_{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);

  // input_ids [B, T] int64. skip_layers = 0 gives last_hidden_state; k > 0 stops k layers early
  // (diffusers' clip_skip): final_layer_norm(hidden_states[-(k+1)]).
  torch::Tensor forward(const torch::Tensor& input_ids, int64_t skip_layers = 0);

  // Raw hidden states after `layers` transformer layers (0 = embeddings), before the final LayerNorm.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, int64_t layers);

  // last_hidden_state at each sequence's first EOS token (transformers' pooler_output).
  torch::Tensor pooled(const torch::Tensor& last_hidden_state, const torch::Tensor& input_ids) const;

  // Appends rows [n, hidden] to the token-embedding table (textual inversion) and returns the id of
  // the first; the rows take the table's dtype and device.
  int64_t append_token_embeddings(const torch::Tensor& rows);

  const ClipTextConfig& config() const { return config_; }

 private:
  ClipTextConfig config_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(ClipTextModel);

}  // namespace sdtune::models
