#include "pipeline/lora_fuse.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"
#include "pipeline/model_export.h"

namespace fs = std::filesystem;

namespace sdtune::pipeline {

namespace {

// Writes a module's parameters under the source's key names and dtype (prefix for CLIP).
void save_component(torch::nn::Module& module, const std::string& source_file, const std::string& prefix, const fs::path& target) {
  const io::SafetensorsFile source(source_file);
  const at::ScalarType dtype = source.tensors().empty() ? at::kFloat : io::to_scalar_type(source.tensors()[0].dtype);
  io::TensorMap tensors;
  for (const auto& p : module.named_parameters()) tensors[prefix + p.key()] = p.value().detach().to(dtype);
  io::save_tensors(target.string(), tensors, source.metadata());
}

// Weight files (and shard indexes) of the two components that get new weights: not copied.
bool is_replaced(const fs::path& relative) {
  const std::string component = relative.begin()->string();
  if (component != "unet" && component != "text_encoder") return false;
  const std::string ext = relative.extension().string();
  return (ext == ".safetensors" || ext == ".json") && relative.filename() != "config.json";
}

// The source folder copied to `tmp`, with the UNet and text encoder weights replaced by the merged ones.
void write_fused_folder(const io::ModelFolder& source, const std::string& variant, const fs::path& tmp, torch::nn::Module& unet, torch::nn::Module& text_encoder) {
  fs::create_directories(tmp);
  for (const auto& entry : fs::recursive_directory_iterator(source.root())) {
    const fs::path relative = fs::relative(entry.path(), source.root());
    if (entry.is_directory()) fs::create_directories(tmp / relative);
    else if (entry.is_regular_file() && !is_replaced(relative)) io::copy_file_atomically(entry.path().string(), (tmp / relative).string());
  }
  for (const auto& [component, module, prefix] :
       {std::tuple<std::string, torch::nn::Module*, std::string>{"unet", &unet, ""}, {"text_encoder", &text_encoder, "text_model."}}) {
    const std::string name = component == "unet" ? "diffusion_pytorch_model.safetensors" : "model.safetensors";
    save_component(*module, source.weight_files(component, variant).front(), prefix, tmp / component / name);
  }
}

}  // namespace

std::vector<lora::MergeReport> fuse_loras(const io::ModelFiles& source, const std::vector<std::pair<lora::LoraFile, double>>& loras,
                                          const std::string& output, bool allow_partial, const std::string& variant) {
  if (fs::exists(output)) throw Error(output, "already exists; choose a new " + std::string(source.is_single_file() ? "file" : "folder") + " for the fused model");
  if (source.is_single_file() && fs::path(output).extension() != ".safetensors")
    throw Error("--output", "a single-file model fuses into a single file: give a name ending in .safetensors");
  LoadOptions load;
  load.variant = variant;
  auto text_encoder = load_text_encoder(source, load);
  auto unet = load_unet(source, load);
  lora::LoraMerger merger(*unet, *text_encoder);
  std::vector<lora::MergeReport> reports;
  for (const auto& [file, weight] : loras) reports.push_back(merger.merge(file, weight, allow_partial));
  if (source.is_single_file()) {
    auto vae = load_vae(source, load);
    write_single_file(exported_model(source, *unet, *text_encoder, *vae), output, stored_dtype(source));
    return reports;
  }

  // Everything else is copied as it is; the two changed components get new single-file weights.
  const fs::path tmp = output + ".tmp-fuse";
  fs::remove_all(tmp);
  try {
    write_fused_folder(source.folder(), variant, tmp, *unet, *text_encoder);
  } catch (...) {  // a full disk: no half-written folder stays behind
    io::discard_partial_write(tmp.string(), output, "the fused model");
  }
  fs::rename(tmp, output);
  return reports;
}

}  // namespace sdtune::pipeline
