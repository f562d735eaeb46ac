// A single-file Stable Diffusion checkpoint in the original (LDM / CompVis) layout, as the Hub and
// civitai distribute them and A1111, ComfyUI and stable-diffusion.cpp load them: its family told from
// its keys and shapes, and each component's tensors found under diffusers' names (checkpoint_keys.h).
#pragma once
#include <string>

#include "io/json_file.h"
#include "io/safetensors.h"

namespace sdtune::io {

class SingleFileCheckpoint {
 public:
  // Reads the header; refuses a file that is not a full SD checkpoint (a LoRA, a VAE, SDXL) with what
  // it looks like. The file is mapped again by each component's weights and only while they are read,
  // so a model in memory does not also keep the whole file's pages resident.
  explicit SingleFileCheckpoint(const std::string& path);

  const std::string& path() const { return path_; }

  struct FamilyGuess {
    std::string family;  // a model_families.h name, or "" when the shapes show none sdtune ships
    std::string reason;  // what was seen, for the one line the command prints
  };
  // diffusers' rule (infer_diffusers_model_type): 9 input channels mean inpainting, a cross-attention
  // width of 1024 SD 2.x, otherwise SD 1.x. SD 2 base and 768-v have the same shapes and a safetensors
  // file has no global_step, so diffusers takes SD 2.1 768-v: so does this, unless `prediction_type`
  // is "epsilon" (the 512 base model).
  FamilyGuess guess_family(const std::string& prediction_type) const;

  bool has_text_encoder() const { return !text_prefix_.empty(); }
  bool open_clip() const { return open_clip_; }  // SD 2's OpenCLIP layout (cond_stage_model.model.*)

  SafetensorsSet unet(const Json& config, const std::string& where) const;
  SafetensorsSet vae(const Json& config, const std::string& where) const;
  SafetensorsSet text_encoder() const;  // CLIPTextModel names (text_model.*)

 private:
  std::string path_;
  std::vector<int64_t> conv_in_shape_, context_shape_;  // what guess_family looks at ([] when absent)
  std::string vae_prefix_ = "first_stage_model.";
  std::string text_prefix_;  // "" when the file has no text encoder
  bool open_clip_ = false, text_model_level_ = true;
};

// A VAE on its own (--vae FILE): the LDM layout (encoder.down.0.block.0..., with or without
// first_stage_model.) or diffusers' (encoder.down_blocks.0.resnets.0...), told from the keys.
SafetensorsSet vae_file_weights(const std::string& path, const Json& config, const std::string& where);

}  // namespace sdtune::io
