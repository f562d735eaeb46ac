// UNet2DConditionModel's config.json, normalised: per-block lists, head counts resolved the way
// diffusers resolves them (in SD configs "attention_head_dim" is really the number of heads).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "models/common/weight_signature.h"
#include <vector>

namespace sdtune::models {

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;
  std::vector<int64_t> block_out_channels;
  std::vector<std::string> down_block_types;
  std::vector<std::string> up_block_types;
  bool has_mid_block = true;
  std::vector<int64_t> layers_per_block;              // per down block
  std::vector<int64_t> heads;                         // per down block
  std::vector<int64_t> cross_attention_dim;           // per down block
  std::vector<int64_t> transformer_layers_per_block;  // per down block
  std::vector<int64_t> reverse_transformer_layers;    // per up block
  std::vector<bool> only_cross_attention;             // per down block
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  bool center_input_sample = false;
  int64_t time_embedding_dim = 0;  // block_out_channels[0] * 4 unless set

  // Throws Error(where, ...) for a malformed config or one sdtune does not support (e.g. SDXL's
  // addition embeddings), naming the key.
  static UNetConfig from_json(const nlohmann::json& config, const std::string& where);
  // Tensors (names inside the component) whose shapes this config fixes.
  WeightSignature weight_signature() const;
};

}  // namespace sdtune::models
