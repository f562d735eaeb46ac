// Writing a whole model as a diffusers folder or as one single-file checkpoint in the original (LDM)
// layout that A1111, ComfyUI and stable-diffusion.cpp read: `sdtune convert`, `lora fuse` of a single
// file and `dev make-model`. The single-file keys come from io/checkpoint_keys.h, the same table that
// reads them.
#pragma once
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>

#include <string>

#include <torch/nn/module.h>

#include "io/json_file.h"
#include "io/tokenizer_files.h"

namespace sdtune::io {
class ModelFiles;
}

namespace sdtune::pipeline {

struct ExportedModel {
  torch::nn::Module* unet = nullptr;
  torch::nn::Module* text_encoder = nullptr;  // parameters without transformers' "text_model." prefix
  torch::nn::Module* vae = nullptr;
  io::Json unet_config, text_encoder_config, vae_config, scheduler_config;
  io::TokenizerFiles tokenizer;
  bool open_clip = false;  // the text encoder goes into a single file in OpenCLIP's layout (SD 2)
};

// `files`' configs and tokenizer with these modules (loaded from them, perhaps changed since).
ExportedModel exported_model(const io::ModelFiles& files, torch::nn::Module& unet, torch::nn::Module& text_encoder,
                             torch::nn::Module& vae);

// The dtype a model's UNet weights are stored in (what a fused or converted copy keeps by default).
at::ScalarType stored_dtype(const io::ModelFiles& files, const std::string& variant = "");

// `sdtune convert`: `files` (their `variant` weight files) as a diffusers folder, or as a single file
// when `output` ends in .safetensors, in `dtype` (default: the stored one).
void convert_model(const io::ModelFiles& files, const std::string& output, c10::optional<at::ScalarType> dtype,
                   const std::string& variant = "");

// SD 2's OpenCLIP text encoder uses GELU, SD 1's CLIP ViT-L quick-GELU: the layout a single file takes.
bool uses_open_clip_layout(const io::Json& text_encoder_config);

// A diffusers folder (model_index.json, configs, tokenizer, safetensors weights in `dtype`), written
// beside `output` and renamed into place, so nothing half-written is ever left at `output`.
void write_diffusers_folder(const ExportedModel& model, const std::string& output, at::ScalarType dtype);

// One .safetensors with model.diffusion_model.*, first_stage_model.* and cond_stage_model.* tensors in
// `dtype`, written atomically.
void write_single_file(const ExportedModel& model, const std::string& output, at::ScalarType dtype);

}  // namespace sdtune::pipeline
