// LoRA weight files in the formats people share, read into one form: per target module a down
// (A) and an up (B) matrix and an optional alpha. Formats:
//   diffusers  unet.<module>.lora.down.weight / .lora.up.weight (also text_encoder.<module>...)
//   peft       [unet.|text_encoder.|base_model.model.]<module>.lora_A[.default].weight / lora_B
//   old        <module without .to_x>.processor.to_q_lora.down.weight (diffusers attention processors)
//   kohya      lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha, lora_te_...
//   LyCORIS    kohya names with .hada_w1_a ... (LoHa), .lokr_w1 ... (LoKr), .lora_mid.weight, .dora_scale
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <map>
#include <string>
#include <vector>

namespace sdtune::lora {

enum class Component { UNet, TextEncoder };

// LyCORIS adapters beside plain LoRA: LoHa (Hadamard product of two low-rank products) and LoKr
// (Kronecker product of two factors, each full or low-rank). LoCon is LoRA on a convolution.
enum class ModuleType { LoRA, LoHa, LoKr };

struct LoraModule {
  Component component;
  // Dotted module path inside the component (diffusers names, e.g. down_blocks.0...attn1.to_q;
  // text encoder without the "text_model." prefix). kohya files flatten names (dots as
  // underscores): `flat` is then set, `module` is the unflattened reading, and merging matches the
  // flattened name against the model's own modules.
  std::string module;
  bool flat = false;
  std::string key_prefix;  // the file's key stem for this module, for error messages
  ModuleType type = ModuleType::LoRA;
  at::Tensor down;         // LoRA: [rank, in] or [rank, in, kh, kw]
  at::Tensor up;           // LoRA: [out, rank] or [out, rank, 1, 1]
  at::Tensor mid;          // LoCon's CP decomposition ("lora_mid"): [rank, rank, kh, kw], down then [rank, in, 1, 1]
  std::map<std::string, at::Tensor> factors;  // LoHa / LoKr tensors by key: hada_w1_a ... hada_t2, lokr_w1 ... lokr_t2
  at::Tensor dora_scale;   // DoRA magnitudes: [out, 1, ...] (LyCORIS) or [1, in, ...] (kohya)
  c10::optional<double> alpha;
  // What alpha is divided by (A1111's "dim"): LoRA's and LoHa's rank, LoKr's low-rank factor's rank,
  // 0 for a LoKr of two full matrices.
  int64_t rank() const;
  // alpha / rank where both exist, else 1: A1111's calc_scale, ComfyUI's and stable-diffusion.cpp's rule.
  double scale() const;
  // For `lora info`: lora, locon, locon-cp, loha, loha-cp, lokr, lokr-cp (+dora).
  std::string type_name() const;
};

struct LoraFile {
  std::string path;
  std::string format;  // "diffusers", "peft", "diffusers-old", "kohya"
  std::vector<LoraModule> modules;
  std::map<std::string, std::string> metadata;
};

// A LoRA given on the command line: a .safetensors file, a folder holding
// pytorch_lora_weights.safetensors (or one .safetensors file), or a Hub id in the local cache.
// A PEFT adapter_config.json next to the weights supplies alpha (and per-module overrides).
std::string resolve_lora_path(const std::string& spec);
LoraFile read_lora(const std::string& spec);

// Key formats write_lora can produce.
enum class LoraFormat { Diffusers, Peft, Kohya };
LoraFormat parse_lora_format(const std::string& name);

// How a written file carries alpha. A1111, ComfyUI and stable-diffusion.cpp scale a module by
// alpha/rank only where a ".alpha" tensor is stored, else by 1; diffusers by the ".alpha" tensors of
// kohya keys, else by "lora_adapter_metadata", else by 1. So the one form they all read alike folds
// alpha/rank into the up matrix and stores alpha = rank (kohya ".alpha" tensors, diffusers metadata).
enum class AlphaForm {
  Folded,     // every file meant for people and other tools
  AsTrained,  // the trainer's exact weights, alpha kept apart: a checkpoint's resume copy
};

// Writes `lora` atomically in `format`, alphas in `form`: kohya's ".alpha" tensors, and for diffusers
// and PEFT keys the "lora_adapter_metadata" that diffusers reads (r, lora_alpha, rank/alpha_pattern).
void write_lora(const LoraFile& lora, const std::string& path, LoraFormat format, AlphaForm form = AlphaForm::Folded);

// `m` with alpha/rank folded into one factor (LoRA's up, LoHa's hada_w1_a, LoKr's lokr_w1[_a]) and
// alpha = rank (unchanged when the scale is 1). LyCORIS modules can only be written with kohya keys.
LoraModule with_alpha_folded(const LoraModule& m);

// "path[:weight]" -> (path, weight); weight 1 when absent. Errors name the flag.
std::pair<std::string, double> parse_lora_flag(const std::string& value);

}  // namespace sdtune::lora
