// `sdtune lora fuse`: a complete diffusers folder with LoRAs merged into the UNet and text encoder.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "lora/lora_file.h"
#include "lora/lora_merge.h"

namespace sdtune::io {
class ModelFolder;
}

namespace sdtune::pipeline {

// Copies `source` to `output` (which must not exist), rewriting the UNet and text-encoder weights
// with every LoRA merged at its weight, in the dtype the source files use. Returns one report per LoRA.
std::vector<lora::MergeReport> fuse_loras(const io::ModelFolder& source, const std::vector<std::pair<lora::LoraFile, double>>& loras,
                                          const std::string& output, bool allow_partial);

}  // namespace sdtune::pipeline
