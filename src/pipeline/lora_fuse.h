// `sdtune lora fuse`: a complete model (folder or single file) with LoRAs merged into the UNet and text encoder.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "lora/lora_file.h"
#include "lora/lora_merge.h"

namespace sdtune::io {
class ModelFiles;
}

namespace sdtune::pipeline {

// Copies `source` to `output` (which must not exist), rewriting the UNet and text-encoder weights
// with every LoRA merged at its weight, in the dtype the source files use: a diffusers folder as a
// folder, a single-file checkpoint as a single file. `variant` picks the source's weight files
// (diffusion_pytorch_model.fp16.safetensors); the fused ones get the plain names. Returns one report per LoRA.
std::vector<lora::MergeReport> fuse_loras(const io::ModelFiles& source, const std::vector<std::pair<lora::LoraFile, double>>& loras,
                                          const std::string& output, bool allow_partial, const std::string& variant = "");

}  // namespace sdtune::pipeline
