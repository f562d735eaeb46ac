// The weight change one LoRA / LyCORIS module stands for, before its scale, as A1111, ComfyUI and
// LyCORIS rebuild it:
//   LoRA   up @ down; with lora_mid (CP): einsum("m n k l, i m, n j -> i j k l", mid, up, down)
//   LoHa   (w1_a @ w1_b) * (w2_a @ w2_b); with hada_t1/t2 (CP) each einsum("i j k l, j r, i p -> p r k l", t, w_b, w_a)
//   LoKr   kron(w1, w2), each factor full or w_a @ w_b; w2 with lokr_t2 as LoHa's CP form
// and DoRA on the merged weight as ComfyUI applies it (comfy/weight_adapter/base.py weight_decompose):
// W' = W + strength * ((W + scale * delta) * dora_scale / ||W + scale * delta|| - W), the norm per output
// row for a dora_scale of shape [out, 1, ...] (LyCORIS), per input column for [1, in, ...] (kohya).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "lora/lora_file.h"

namespace sdtune::lora {

// The number of weights the module's factors make, computed from their shapes alone (a hostile file
// must not make a kron of two large factors allocate terabytes); "" problem when they fit together.
struct DeltaSize {
  int64_t numel = 0;
  std::string problem;  // why the factors do not fit together, e.g. "hada_w1_a [8, 2] and hada_w1_b [3, 8]"
};
DeltaSize delta_size(const LoraModule& m);

// The unscaled change, reshaped to `target_shape` (whose element count delta_size must have matched).
at::Tensor module_delta(const LoraModule& m, at::IntArrayRef target_shape);

// Whether a DoRA module's magnitudes are per output row ([out, 1, ...] or [out]) rather than per input column.
bool dora_per_output(const LoraModule& m, int64_t out_rows);

// What merging adds to `weight` (float32): strength * scale * delta, or with DoRA as above.
at::Tensor weight_change(const LoraModule& m, const at::Tensor& weight, double strength);

}  // namespace sdtune::lora
