// The Stable Diffusion families that single-file checkpoints come in, with the configs that the Hub's
// diffusers repositories of each family hold (what diffusers' from_single_file fetches for them). A
// single file carries weights only; these configs and the shipped CLIP tokenizer complete it.
#pragma once
#include <string>
#include <vector>

#include "io/json_file.h"

namespace sdtune::io {

struct ModelFamily {
  std::string name;         // sd15, sd15-inpainting, sd2-base, sd2, sd2-inpainting
  std::string description;  // e.g. "SD 2.x 768 v-prediction"
  std::string hub_repo;     // the diffusers repository whose configs these are
  Json unet, vae, text_encoder, scheduler;
  std::string pad_token;    // "<|endoftext|>" (CLIP ViT-L) or "!" (SD 2's OpenCLIP tokenizer)
  bool open_clip = false;   // the text encoder is OpenCLIP ViT-H (SD 2), stored in OpenCLIP's layout
};

// Throws Error naming `where` for an unknown name.
const ModelFamily& model_family(const std::string& name, const std::string& where);
std::vector<std::string> model_family_names();

}  // namespace sdtune::io
