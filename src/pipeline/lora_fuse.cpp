#include "pipeline/lora_fuse.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "io/model_folder.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"

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

}  // namespace

std::vector<lora::MergeReport> fuse_loras(const io::ModelFolder& source, const std::vector<std::pair<lora::LoraFile, double>>& loras,
                                          const std::string& output, bool allow_partial) {
  if (fs::exists(output)) throw Error(output, "already exists; choose a new folder for the fused model");
  auto text_encoder = load_text_encoder(source, {});
  auto unet = load_unet(source, {});
  lora::LoraMerger merger(*unet, *text_encoder);
  std::vector<lora::MergeReport> reports;
  for (const auto& [file, weight] : loras) reports.push_back(merger.merge(file, weight, allow_partial));

  // Everything else is copied as it is; the two changed components get new single-file weights.
  const fs::path tmp = output + ".tmp-fuse";
  fs::remove_all(tmp);
  fs::copy(source.root(), tmp, fs::copy_options::recursive);
  for (const auto& [component, module, prefix] :
       {std::tuple<std::string, torch::nn::Module*, std::string>{"unet", unet.get(), ""}, {"text_encoder", text_encoder.get(), "text_model."}}) {
    const auto files = source.weight_files(component);
    for (const auto& entry : fs::directory_iterator(tmp / component))
      if (entry.path().extension() == ".safetensors" || entry.path().extension() == ".json")
        if (entry.path().filename() != "config.json") fs::remove(entry.path());
    const std::string name = component == "unet" ? "diffusion_pytorch_model.safetensors" : "model.safetensors";
    save_component(*module, files.front(), prefix, tmp / component / name);
  }
  fs::rename(tmp, output);
  return reports;
}

}  // namespace sdtune::pipeline
