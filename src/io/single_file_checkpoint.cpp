#include "io/single_file_checkpoint.h"

#include <algorithm>

#include "core/error.h"
#include "io/checkpoint_keys.h"

namespace sdtune::io {

namespace {

bool any_key_starts_with(const SafetensorsFile& file, const std::string& prefix) {
  const auto& tensors = file.tensors();  // sorted by name: the first name not below the prefix decides
  const auto it = std::lower_bound(tensors.begin(), tensors.end(), prefix,
                                   [](const TensorEntry& e, const std::string& p) { return e.name < p; });
  return it != tensors.end() && it->name.compare(0, prefix.size(), prefix) == 0;
}

// What a file without model.diffusion_model.* tensors probably is, for the refusal.
std::string what_it_looks_like(const SafetensorsFile& file) {
  if (any_key_starts_with(file, "lora_unet_") || any_key_starts_with(file, "lora_te") ||
      any_key_starts_with(file, "unet.") || any_key_starts_with(file, "base_model.model."))
    return "it looks like a LoRA: pass it with --lora";
  if (any_key_starts_with(file, "encoder.") || any_key_starts_with(file, "first_stage_model.encoder."))
    return "it looks like a VAE: pass it with --vae beside a model";
  if (any_key_starts_with(file, "conv_in.") || any_key_starts_with(file, "down_blocks."))
    return "it looks like a diffusers UNet file: pass the whole diffusers folder";
  return "it is not a Stable Diffusion 1.x/2.x checkpoint";
}

}  // namespace

SingleFileCheckpoint::SingleFileCheckpoint(const std::string& path) : path_(path) {
  const SafetensorsFile file(path);
  if (any_key_starts_with(file, "conditioner.embedders."))
    throw Error(path, "is an SDXL checkpoint (conditioner.embedders.*); sdtune loads SD 1.x and 2.x single files so far");
  if (!any_key_starts_with(file, kLdmUnetPrefix))
    throw Error(path, "has no UNet (no model.diffusion_model.* tensors): " + what_it_looks_like(file));
  if (!any_key_starts_with(file, vae_prefix_) && any_key_starts_with(file, "vae.")) vae_prefix_ = "vae.";
  if (file.contains(std::string(kLdmOpenClipPrefix) + "token_embedding.weight")) {
    text_prefix_ = kLdmOpenClipPrefix, open_clip_ = true;
  } else if (any_key_starts_with(file, std::string(kLdmClipPrefix) + "text_model.")) {
    text_prefix_ = kLdmClipPrefix;
  } else if (any_key_starts_with(file, std::string(kLdmClipPrefix) + "embeddings.")) {
    text_prefix_ = kLdmClipPrefix, text_model_level_ = false;  // transformers < 4.x saved CLIP without text_model.
  }
  if (const TensorEntry* conv_in = file.find(std::string(kLdmUnetPrefix) + "input_blocks.0.0.weight")) conv_in_shape_ = conv_in->shape;
  for (const auto& entry : file.tensors())  // the first cross-attention key projection: [inner, context width]
    if (entry.name.rfind(kLdmUnetPrefix, 0) == 0 && entry.name.size() > 18 &&
        entry.name.compare(entry.name.size() - 18, 18, ".attn2.to_k.weight") == 0) {
      context_shape_ = entry.shape;
      break;
    }
}

SingleFileCheckpoint::FamilyGuess SingleFileCheckpoint::guess_family(const std::string& prediction_type) const {
  if (conv_in_shape_.size() != 4 || context_shape_.size() != 2) return {"", "no conv_in or cross-attention weights of the usual shapes"};
  const int64_t channels = conv_in_shape_[1], width = context_shape_[1];
  const std::string seen = "cross-attention width " + std::to_string(width) + ", " + std::to_string(channels) + " input channels";
  if ((width != 768 && width != 1024) || (channels != 4 && channels != 9)) return {"", seen};
  const bool sd2 = width == 1024;
  if (channels == 9) return {sd2 ? "sd2-inpainting" : "sd15-inpainting", seen};
  if (!sd2) return {"sd15", seen};
  if (prediction_type == "epsilon") return {"sd2-base", seen + "; --prediction_type epsilon: the 512 base model"};
  return {"sd2", seen + "; SD 2 base and 768-v look alike, and like diffusers sdtune takes 768-v (--prediction_type epsilon for a 512 base model)"};
}

SafetensorsSet SingleFileCheckpoint::unet(const Json& config, const std::string& where) const {
  const KeyMap map = unet_key_map(config, where);
  return SafetensorsSet(SafetensorsFile(path_), [map](const std::string& name) { return map.original_of(name); });
}

SafetensorsSet SingleFileCheckpoint::vae(const Json& config, const std::string& where) const {
  SafetensorsFile file(path_);
  if (!any_key_starts_with(file, vae_prefix_ + "encoder."))
    throw Error(path(), "has no VAE (no first_stage_model.* tensors): pass one with --vae");
  const KeyMap map = vae_key_map(config, vae_prefix_, where);
  return SafetensorsSet(file, [map](const std::string& name) { return map.original_of(name); });
}

SafetensorsSet SingleFileCheckpoint::text_encoder() const {
  if (!has_text_encoder()) throw Error(path(), "has no text encoder (no cond_stage_model.* tensors)");
  const KeyMap map = open_clip_ ? open_clip_key_map(text_prefix_) : clip_text_key_map(text_prefix_, text_model_level_);
  return SafetensorsSet(SafetensorsFile(path_), [map](const std::string& name) { return map.original_of(name); });
}

SafetensorsSet vae_file_weights(const std::string& path, const Json& config, const std::string& where) {
  const SafetensorsFile file(path);
  for (const std::string prefix : {"", "first_stage_model.", "vae."})
    if (any_key_starts_with(file, prefix + "encoder.down.")) {
      const KeyMap map = vae_key_map(config, prefix, where);
      return SafetensorsSet(file, [map](const std::string& name) { return map.original_of(name); });
    }
  if (any_key_starts_with(file, "encoder.down_blocks.")) return SafetensorsSet(std::vector<std::string>{path});
  throw Error(path, "is not a VAE (neither encoder.down.* of the original layout nor diffusers' encoder.down_blocks.*)");
}

}  // namespace sdtune::io
