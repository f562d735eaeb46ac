// The key maps between diffusers' tensor names and the original (LDM / CompVis) single-file layout
// that A1111, ComfyUI and stable-diffusion.cpp read: one table of name rules per component family,
// built from the component's config (block counts), applied to one name at a time. The rules are
// those of diffusers' single_file_utils (LDM -> diffusers) and its scripts/convert_diffusers_to_
// original_stable_diffusion.py (diffusers -> LDM); both directions use the same table.
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"
#include "io/safetensors.h"

namespace sdtune::io {

// Prefixes of the components inside a single-file checkpoint.
constexpr const char* kLdmUnetPrefix = "model.diffusion_model.";
constexpr const char* kLdmVaePrefix = "first_stage_model.";
constexpr const char* kLdmClipPrefix = "cond_stage_model.transformer.";  // SD 1.x: transformers' CLIP names
constexpr const char* kLdmOpenClipPrefix = "cond_stage_model.model.";    // SD 2.x: OpenCLIP's names

class KeyMap {
 public:
  // One rule: a diffusers name prefix (ending in '.') or whole name, the original one, and the renames
  // inside the block that follow it (resnet and attention members are named differently).
  struct Rename {
    std::string diffusers, original;
    int part = 0, parts = 1;  // rows part/parts of a fused original tensor (OpenCLIP's q/k/v in_proj)
    bool conv1x1 = false;     // a linear weight stored as a 1x1 convolution (the LDM VAE's attention)
  };
  struct Rule {
    std::string diffusers, original;
    const std::vector<Rename>* inner = nullptr;
  };

  KeyMap(std::string prefix, std::vector<Rule> rules) : prefix_(std::move(prefix)), rules_(std::move(rules)) {}

  // Where the diffusers tensor `name` is stored; StoredTensor.name is "" when no rule covers it.
  StoredTensor original_of(const std::string& name) const;

 private:
  std::string prefix_;
  std::vector<Rule> rules_;
};

// UNet2DConditionModel <-> model.diffusion_model.* (input_blocks / middle_block / output_blocks).
KeyMap unet_key_map(const Json& unet_config, const std::string& where);
// AutoencoderKL <-> first_stage_model.* (encoder.down.N.block.M, decoder.up in reverse order, mid.attn_1);
// `prefix` "" for a VAE file of its own.
KeyMap vae_key_map(const Json& vae_config, const std::string& prefix, const std::string& where);
// transformers' CLIPTextModel names (text_model.*) under `prefix`, as SD 1.x files keep them. Old files
// lack the "text_model." level: `with_text_model` false.
KeyMap clip_text_key_map(const std::string& prefix, bool with_text_model = true);
// CLIPTextModel <-> OpenCLIP (transformer.resblocks.N, fused in_proj q/k/v, ln_final), as SD 2.x files.
KeyMap open_clip_key_map(const std::string& prefix);

}  // namespace sdtune::io
