#include "pipeline/model_export.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint_keys.h"
#include "io/model_files.h"
#include "io/model_source.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"

namespace fs = std::filesystem;

namespace sdtune::pipeline {

namespace {

void write_json(const fs::path& path, const io::Json& json) {
  io::write_file_atomically(path.string(), [&](std::ostream& out) { out << json.dump(2) << "\n"; });
}

void write_text(const fs::path& path, const std::string& text) {
  io::write_file_atomically(path.string(), [&](std::ostream& out) { out << text; });
}

io::TensorMap parameters_of(torch::nn::Module& module, const std::string& prefix, at::ScalarType dtype) {
  io::TensorMap tensors;
  for (const auto& p : module.named_parameters()) tensors.emplace(prefix + p.key(), p.value().detach().to(torch::kCPU, dtype));
  return tensors;
}

io::Json model_index(const io::Json& scheduler_config, const std::string& where) {
  return {{"_class_name", "StableDiffusionPipeline"},
          {"feature_extractor", {nullptr, nullptr}},
          {"requires_safety_checker", false},
          {"safety_checker", {nullptr, nullptr}},
          {"scheduler", {"diffusers", io::config_value<std::string>(scheduler_config, "_class_name", "PNDMScheduler", where)}},
          {"text_encoder", {"transformers", "CLIPTextModel"}},
          {"tokenizer", {"transformers", "CLIPTokenizer"}},
          {"unet", {"diffusers", "UNet2DConditionModel"}},
          {"vae", {"diffusers", "AutoencoderKL"}}};
}

// Every parameter of `module` under its single-file name: q/k/v thirds joined into one in_proj
// tensor in order, linear attention weights of the VAE reshaped to 1x1 convolutions.
void add_renamed(io::TensorMap& out, torch::nn::Module& module, const std::string& prefix, const io::KeyMap& map, at::ScalarType dtype) {
  std::map<std::string, std::vector<at::Tensor>> fused;
  for (const auto& [name, tensor] : parameters_of(module, prefix, dtype)) {
    const io::StoredTensor stored = map.original_of(name);
    if (stored.name.empty()) throw std::logic_error("no single-file key for " + name);
    if (stored.parts > 1) {
      auto& parts = fused[stored.name];
      parts.resize(size_t(stored.parts));
      parts[size_t(stored.part)] = tensor;
    } else {
      out.emplace(stored.name, stored.conv1x1 && tensor.dim() == 2 ? tensor.reshape({tensor.size(0), tensor.size(1), 1, 1}) : tensor);
    }
  }
  for (auto& [name, parts] : fused) out.emplace(name, torch::cat(parts, 0));
}

}  // namespace

ExportedModel exported_model(const io::ModelFiles& files, torch::nn::Module& unet, torch::nn::Module& text_encoder,
                             torch::nn::Module& vae) {
  ExportedModel model;
  model.unet = &unet, model.text_encoder = &text_encoder, model.vae = &vae;
  model.unet_config = files.component_config("unet");
  model.text_encoder_config = files.component_config("text_encoder");
  model.vae_config = files.component_config("vae");
  model.scheduler_config = files.component_config("scheduler");
  // Checked here, naming the file: model_index.json repeats the class (nothing else reads this config on the way).
  model.scheduler_config["_class_name"] =
      io::config_value<std::string>(model.scheduler_config, "_class_name", "PNDMScheduler", files.component_config_path("scheduler"));
  model.tokenizer = files.tokenizer_files();
  model.open_clip = uses_open_clip_layout(model.text_encoder_config);
  return model;
}

at::ScalarType stored_dtype(const io::ModelFiles& files, const std::string& variant) {
  const auto weights = files.component_weights("unet", variant);
  const auto found = weights.find("conv_in.weight");
  return found.entry ? io::to_scalar_type(found.entry->dtype) : at::kFloat;
}

void convert_model(const io::ModelFiles& files, const std::string& output, c10::optional<at::ScalarType> dtype,
                   const std::string& variant) {
  LoadOptions load;
  load.variant = variant;
  load.dtype = dtype.value_or(stored_dtype(files, variant));
  auto unet = load_unet(files, load);
  auto text_encoder = load_text_encoder(files, load);
  auto vae = load_vae(files, load);
  const ExportedModel model = exported_model(files, *unet, *text_encoder, *vae);
  if (fs::path(output).extension() == ".safetensors") write_single_file(model, output, load.dtype);
  else write_diffusers_folder(model, output, load.dtype);
}

bool uses_open_clip_layout(const io::Json& text_encoder_config) {
  return io::config_value<std::string>(text_encoder_config, "hidden_act", "", "text encoder config") == "gelu";
}

void write_diffusers_folder(const ExportedModel& model, const std::string& output, at::ScalarType dtype) {
  std::error_code ec;
  if (fs::exists(output, ec)) throw Error(output, "already exists; choose a new folder");
  const fs::path tmp = output + ".tmp-write";
  fs::remove_all(tmp, ec);
  try {
    for (const auto& dir : io::pipeline_components()) fs::create_directories(tmp / dir);
    write_json(tmp / "model_index.json", model_index(model.scheduler_config, "scheduler config"));
    write_json(tmp / "scheduler" / "scheduler_config.json", model.scheduler_config);
    write_json(tmp / "unet" / "config.json", model.unet_config);
    write_json(tmp / "vae" / "config.json", model.vae_config);
    write_json(tmp / "text_encoder" / "config.json", model.text_encoder_config);
    const auto& t = model.tokenizer;
    for (const auto& [name, file] : {std::pair{"vocab.json", &t.vocab}, {"merges.txt", &t.merges},
                                      {"tokenizer_config.json", &t.config}, {"special_tokens_map.json", &t.special_tokens}})
      if (!file->text.empty()) write_text(tmp / "tokenizer" / name, file->text);
    const std::map<std::string, std::string> metadata = {{"format", "pt"}};
    io::save_tensors((tmp / "unet" / "diffusion_pytorch_model.safetensors").string(), parameters_of(*model.unet, "", dtype), metadata);
    io::save_tensors((tmp / "vae" / "diffusion_pytorch_model.safetensors").string(), parameters_of(*model.vae, "", dtype), metadata);
    io::save_tensors((tmp / "text_encoder" / "model.safetensors").string(), parameters_of(*model.text_encoder, "text_model.", dtype), metadata);
  } catch (...) {  // a full disk: no half-written folder stays behind
    io::discard_partial_write(tmp.string(), output, "the model folder");
  }
  fs::rename(tmp, output);
}

void write_single_file(const ExportedModel& model, const std::string& output, at::ScalarType dtype) {
  io::TensorMap tensors;
  add_renamed(tensors, *model.unet, "", io::unet_key_map(model.unet_config, "unet config"), dtype);
  add_renamed(tensors, *model.vae, "", io::vae_key_map(model.vae_config, io::kLdmVaePrefix, "vae config"), dtype);
  add_renamed(tensors, *model.text_encoder, "text_model.",
              model.open_clip ? io::open_clip_key_map(io::kLdmOpenClipPrefix) : io::clip_text_key_map(io::kLdmClipPrefix), dtype);
  io::save_tensors(output, tensors, {{"format", "pt"}});
}

}  // namespace sdtune::pipeline
