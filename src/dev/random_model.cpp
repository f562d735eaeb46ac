#include "dev/random_model.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/tensor_io.h"
#include "models/clip_text.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdtune::dev {

namespace {

struct Preset {
  json unet, text_encoder, vae, scheduler;
  std::string pad_token;
};

json unet_config(bool sd2, int64_t sample_size) {
  return {{"_class_name", "UNet2DConditionModel"},
          {"act_fn", "silu"},
          {"attention_head_dim", sd2 ? json({5, 10, 20, 20}) : json(8)},
          {"block_out_channels", {320, 640, 1280, 1280}},
          {"center_input_sample", false},
          {"cross_attention_dim", sd2 ? 1024 : 768},
          {"down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", 4},
          {"layers_per_block", 2},
          {"mid_block_scale_factor", 1},
          {"norm_eps", 1e-05},
          {"norm_num_groups", 32},
          {"out_channels", 4},
          {"sample_size", sample_size},
          {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}},
          {"upcast_attention", false},
          {"use_linear_projection", sd2}};
}

json text_encoder_config(bool sd2) {
  return {{"architectures", {"CLIPTextModel"}},
          {"bos_token_id", 0},
          {"eos_token_id", 2},
          {"hidden_act", sd2 ? "gelu" : "quick_gelu"},
          {"hidden_size", sd2 ? 1024 : 768},
          {"intermediate_size", sd2 ? 4096 : 3072},
          {"layer_norm_eps", 1e-05},
          {"max_position_embeddings", 77},
          {"model_type", "clip_text_model"},
          {"num_attention_heads", sd2 ? 16 : 12},
          {"num_hidden_layers", sd2 ? 23 : 12},
          {"pad_token_id", 1},
          {"projection_dim", sd2 ? 512 : 768},
          {"torch_dtype", "float32"},
          {"vocab_size", 49408}};
}

json vae_config(int64_t sample_size) {
  return {{"_class_name", "AutoencoderKL"},
          {"act_fn", "silu"},
          {"block_out_channels", {128, 256, 512, 512}},
          {"down_block_types", {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}},
          {"in_channels", 3},
          {"latent_channels", 4},
          {"layers_per_block", 2},
          {"norm_num_groups", 32},
          {"out_channels", 3},
          {"sample_size", sample_size},
          {"scaling_factor", 0.18215},
          {"up_block_types", {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}}};
}

json scheduler_config(const std::string& cls, const std::string& prediction) {
  json j = {{"_class_name", cls},
            {"beta_end", 0.012},
            {"beta_schedule", "scaled_linear"},
            {"beta_start", 0.00085},
            {"clip_sample", false},
            {"num_train_timesteps", 1000},
            {"prediction_type", prediction},
            {"set_alpha_to_one", false},
            {"steps_offset", 1},
            {"trained_betas", nullptr}};
  if (cls == "PNDMScheduler") j["skip_prk_steps"] = true;
  return j;
}

Preset preset_for(const std::string& name) {
  if (name == "sd2")
    return {unet_config(true, 96), text_encoder_config(true), vae_config(768), scheduler_config("DDIMScheduler", "v_prediction"), "!"};
  if (name == "sd2-base")
    return {unet_config(true, 64), text_encoder_config(true), vae_config(512), scheduler_config("PNDMScheduler", "epsilon"), "!"};
  if (name == "sd15")
    return {unet_config(false, 64), text_encoder_config(false), vae_config(512), scheduler_config("PNDMScheduler", "epsilon"),
            "<|endoftext|>"};
  throw Error("--preset", "unknown preset " + in_quotes(name) + " (expected sd2, sd2-base or sd15)");
}

void write_json(const fs::path& path, const json& j) {
  fs::create_directories(path.parent_path());
  io::write_file_atomically(path.string(), [&](std::ostream& out) { out << j.dump(2) << "\n"; });
}

// CLIP's byte table order: printable bytes first, then the rest mapped above 255.
std::vector<std::string> byte_symbols() {
  std::vector<int> code(256, -1);
  for (int b = 0; b < 256; ++b)
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) code[b] = b;
  int next = 256;
  std::vector<int> order;
  for (int b = 0; b < 256; ++b)
    if (code[b] >= 0) order.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (code[b] < 0) code[b] = next++, order.push_back(b);
  std::vector<std::string> out;
  for (int b : order) {
    const int c = code[b];
    out.push_back(c < 0x80 ? std::string(1, char(c)) : std::string{char(0xC0 | (c >> 6)), char(0x80 | (c & 0x3F))});
  }
  return out;
}

// A CLIP-style vocabulary of the real size (49408): 256 byte symbols, the same with </w>, merges
// of byte pairs (lower-case letters first) until the size is reached, then BOS and EOS.
void write_tokenizer_files(const fs::path& dir, const std::string& pad_token) {
  constexpr int kVocab = 49408;
  const auto symbols = byte_symbols();
  json vocab = json::object();
  std::vector<std::string> id_order;
  for (const auto& s : symbols) id_order.push_back(s);
  for (const auto& s : symbols) id_order.push_back(s + "</w>");
  std::vector<std::string> firsts, seconds;
  for (char c = 'a'; c <= 'z'; ++c) firsts.push_back(std::string(1, c));
  for (const auto& s : symbols)
    if (s.size() > 1 || !(s[0] >= 'a' && s[0] <= 'z')) firsts.push_back(s);
  std::string merges = "#version: 0.2\n";
  for (const auto& a : firsts) {
    for (const auto& b : firsts) {
      if (int(id_order.size()) >= kVocab - 2) break;
      merges += a + " " + b + "</w>\n";
      id_order.push_back(a + b + "</w>");
    }
  }
  id_order.push_back("<|startoftext|>");
  id_order.push_back("<|endoftext|>");
  for (size_t i = 0; i < id_order.size(); ++i) vocab[id_order[i]] = i;
  fs::create_directories(dir);
  io::write_file_atomically((dir / "vocab.json").string(), [&](std::ostream& out) { out << vocab.dump(); });
  io::write_file_atomically((dir / "merges.txt").string(), [&](std::ostream& out) { out << merges; });
  write_json(dir / "special_tokens_map.json", {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"},
                                               {"pad_token", pad_token}, {"unk_token", "<|endoftext|>"}});
  write_json(dir / "tokenizer_config.json", {{"tokenizer_class", "CLIPTokenizer"}, {"model_max_length", 77},
                                             {"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"},
                                             {"pad_token", pad_token}, {"unk_token", "<|endoftext|>"}});
}

// Saves a freshly initialised module's parameters (names = diffusers keys) in `dtype`.
int64_t save_module(torch::nn::Module& module, const fs::path& path, const std::string& prefix, at::ScalarType dtype) {
  io::TensorMap tensors;
  int64_t count = 0;
  for (const auto& p : module.named_parameters()) {
    tensors.emplace(prefix + p.key(), p.value().detach().to(dtype));
    count += p.value().numel();
  }
  fs::create_directories(path.parent_path());
  io::save_tensors(path.string(), tensors, {{"format", "pt"}});
  return count;
}

}  // namespace

json preset_config(const std::string& preset, const std::string& component) {
  const Preset p = preset_for(preset);
  if (component == "unet") return p.unet;
  if (component == "text_encoder") return p.text_encoder;
  if (component == "vae") return p.vae;
  if (component == "scheduler") return p.scheduler;
  throw Error(component, "no such component in a preset");
}

void write_random_tokenizer(const std::string& folder, const std::string& pad_token) { write_tokenizer_files(folder, pad_token); }

RandomModelReport write_random_model(const RandomModelOptions& options) {
  const Preset preset = preset_for(options.preset);
  const fs::path root(options.output);
  if (fs::exists(root / "model_index.json")) throw Error(options.output, "already holds a model (model_index.json); choose a new folder");
  torch::manual_seed(options.seed);
  torch::NoGradGuard no_grad;
  RandomModelReport report;

  write_json(root / "model_index.json",
             {{"_class_name", "StableDiffusionPipeline"}, {"_sdtune_random_preset", options.preset},
              {"feature_extractor", {nullptr, nullptr}}, {"safety_checker", {nullptr, nullptr}},
              {"requires_safety_checker", false}, {"scheduler", {"diffusers", preset.scheduler["_class_name"]}},
              {"text_encoder", {"transformers", "CLIPTextModel"}}, {"tokenizer", {"transformers", "CLIPTokenizer"}},
              {"unet", {"diffusers", "UNet2DConditionModel"}}, {"vae", {"diffusers", "AutoencoderKL"}}});
  write_json(root / "scheduler" / "scheduler_config.json", preset.scheduler);
  write_tokenizer_files(root / "tokenizer", preset.pad_token);

  write_json(root / "text_encoder" / "config.json", preset.text_encoder);
  {
    models::ClipTextModel encoder(models::ClipTextConfig::from_json(preset.text_encoder, "text_encoder"));
    report.text_encoder_parameters =
        save_module(*encoder, root / "text_encoder" / "model.safetensors", "text_model.", options.dtype);
  }
  write_json(root / "vae" / "config.json", preset.vae);
  {
    models::AutoencoderKL vae(models::VaeConfig::from_json(preset.vae, "vae"));
    report.vae_parameters = save_module(*vae, root / "vae" / "diffusion_pytorch_model.safetensors", "", options.dtype);
  }
  write_json(root / "unet" / "config.json", preset.unet);
  {
    models::UNet2DCondition unet(models::UNetConfig::from_json(preset.unet, "unet"));
    report.unet_parameters = save_module(*unet, root / "unet" / "diffusion_pytorch_model.safetensors", "", options.dtype);
  }
  return report;
}

}  // namespace sdtune::dev
