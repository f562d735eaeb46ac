#include "cli/common_flags.h"

#include <torch/torch.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "core/error.h"
#include "core/runtime.h"
#include "core/torch_compat.h"
#include "io/image_limits.h"
#include "io/model_source.h"

namespace sdtune::cli {

CLI::Validator number_in(double lo, double hi, bool open_low, bool open_high) {
  const std::string range = std::string(open_low ? "(" : "[") + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + (open_high ? ")" : "]");
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) return "must be a finite number, got " + text;
        const bool low_ok = open_low ? value > lo : value >= lo, high_ok = open_high ? value < hi : value <= hi;
        if (!low_ok || !high_ok) return "must be in " + range + ", got " + text;
        return "";
      },
      "NUMBER in " + range);
}

CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        if (digits) std::strtoull(text.c_str(), nullptr, 10);
        if (!digits || errno == ERANGE) return "must be an integer from 0 to 18446744073709551615, got " + text;
        return "";
      },
      "SEED");
}

void refuse_existing_output(const std::string& path, bool overwrite) {
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec)) throw Error(path, "already exists (use --overwrite to replace it)");
}

void add_max_image_pixels_flag(CLI::App* app) {
  app->add_option_function<int64_t>("--max_image_pixels", [](const int64_t& pixels) { io::set_max_image_pixels(pixels); },
                                    "images above this many pixels get a warning, above twice as many they are refused "
                                    "(default 89478485, as PIL)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
}

void ModelFlags::add_to(CLI::App* app, const std::string& model_flag, ModelFlagUse use) {
  spec.components = use.components;
  app->add_option(model_flag, spec.model,
                  "diffusers model folder, single-file .safetensors checkpoint (SD 1.x/2.x, LDM layout), or a Hub id "
                  "(org/name): from the local Hugging Face cache, downloaded into it when missing")
      ->required();
  app->add_option("--revision", spec.revision, "Hub revision: branch, tag or commit")->capture_default_str();
  app->add_flag("--offline", spec.offline, "never download: Hub ids only from the local cache (as HF_HUB_OFFLINE=1)");
  app->add_option("--variant", variant, "weight file variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors)");
  app->add_option("--config", spec.config_dir,
                  "for a single-file checkpoint: a diffusers folder (or Hub id) whose configs and tokenizer it uses "
                  "instead of the ones its family ships with (as diffusers' from_single_file config=)");
  if (use.vae)
    app->add_option("--vae", spec.vae, "a VAE to use instead of the model's: a diffusers VAE folder or Hub id, or a .safetensors file");
  if (use.prediction_type)
    app->add_option("--prediction_type", spec.prediction_type,
                    "epsilon or v_prediction instead of the scheduler config's (for an SD 2 single file also 512 base "
                    "vs 768-v)")
        ->check(CLI::IsMember({"epsilon", "v_prediction"}));
}

io::ModelFiles ModelFlags::open() const {
  io::ModelSpec with_variant = spec;
  with_variant.variant = variant;
  io::ModelFiles files(with_variant);
  if (!files.summary().empty()) std::cerr << "note: " << files.summary() << "\n";
  return files;
}

void PromptFlags::add_to(CLI::App* app, bool with_clip_skip) {
  app->add_option("--prompt_weighting", prompt_weighting,
                  "none: brackets are plain text (diffusers); a1111: (word) (word:1.3) [word] emphasis and BREAK")
      ->check(CLI::IsMember({"none", "a1111"}))
      ->capture_default_str();
  app->add_flag("--truncate_prompts", truncate_prompts,
                "cut prompts after 75 tokens as diffusers does (default: encode longer prompts in chunks of 75, as A1111)");
  if (!with_clip_skip) return;
  app->add_option("--clip_skip", clip_skip,
                  "skip the last N text-encoder layers as diffusers' clip_skip (1 = penultimate layer, A1111's 'Clip skip: 2')")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void EmbeddingFlags::add_to(CLI::App* app) {
  app->add_option("--embedding", files, "textual-inversion embedding (.safetensors), optionally :TOKEN (default: its name in the file, else the file name)");
  app->add_option("--embeddings_dir", dir, "folder of embeddings: a file's name used in a prompt (any case, e.g. EasyNegative) loads it, as in A1111");
}

std::vector<embeddings::Embedding> EmbeddingFlags::apply(const std::vector<std::string>& texts, text::ClipTokenizer& tokenizer,
                                                         models::ClipTextModel encoder) const {
  std::vector<embeddings::Embedding> loaded;
  for (const auto& flag : files) {
    const auto [path, token] = embeddings::parse_embedding_flag(flag);
    loaded.push_back(embeddings::read_embedding(path, token));
  }
  if (!dir.empty())
    for (const auto& path : embeddings::embeddings_used(dir, texts)) loaded.push_back(embeddings::read_embedding(path));
  embeddings::add_embeddings(loaded, tokenizer, encoder);
  for (const auto& e : loaded)
    std::cerr << "embedding " << e.token << " (" << e.vectors.size(0) << (e.vectors.size(0) == 1 ? " vector" : " vectors") << "): " << e.path << "\n";
  return loaded;
}

text::PromptOptions PromptFlags::options() const {
  text::PromptOptions options;
  options.weighting = text::parse_prompt_weighting(prompt_weighting, "--prompt_weighting");
  options.truncate = truncate_prompts;
  return options;
}

void DeviceFlags::add_to(CLI::App* app, bool with_dtype) {
  app->add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  if (with_dtype)
    app->add_option("--dtype", dtype, "fp32, bf16 or fp16 (fp16 on CUDA only)")
        ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
        ->capture_default_str();
  app->add_option("--threads", threads, "CPU threads (default: all cores)")->check(CLI::Range(1, 1024));
}

void warn_if_slow_bf16(bool bf16_on_cpu) {
  // Measured with Debian's LibTorch 1.13: bf16 matrix products and convolutions take the unoptimised
  // fallbacks (aten::mm 85 s, _slow_conv2d_forward 70 s for one SD 2 UNet step at 256², 3.4 s in fp32).
  if (bf16_on_cpu && !compat::kFastCpuBf16)
    std::cerr << "warning: bf16 on the CPU with LibTorch " << compat::libtorch_version()
              << " runs on unoptimised kernels (about 50x slower than fp32 here); fp32 is the fast choice on CPU\n";
}

pipeline::LoadOptions DeviceFlags::load_options(const std::string& variant) const {
  pipeline::LoadOptions options;
  options.variant = variant;
  if (device == "cuda") {
    if (!torch::cuda::is_available())
      throw Error("--device", "CUDA is not available (this build of LibTorch has no CUDA, or no GPU is visible)");
    options.device = c10::Device(c10::kCUDA);
    options.channels_last = true;  // cuDNN's NHWC convolution kernels, fastest with fp16/bf16 tensor cores
  }
  if (dtype == "fp16" && device != "cuda")
    throw Error("--dtype", "fp16 runs on CUDA only (LibTorch has no fp16 matrix products on CPU); use bf16 or fp32");
  options.dtype = dtype == "fp16" ? at::kHalf : dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  warn_if_slow_bf16(options.dtype == at::kBFloat16 && !options.device.is_cuda());
  // LibTorch's default is one thread per physical core; the SMT siblings speed up oneDNN's
  // convolutions too (UNet step at 256² on 2 vCPUs: 4.7 s with 1 thread, 3.4 s with 2).
  const int count = threads > 0 ? threads : std::max(1, int(std::thread::hardware_concurrency()));
  torch::set_num_threads(count);
  set_blas_threads(count);
  return options;
}

void report_prompt(const std::string& label, const std::string& prompt, const text::TokenizedPrompt& tokens,
                   const PromptFlags& flags) {
  if (!tokens.truncated_text.empty())
    std::cerr << "warning: " << label << " is " << tokens.token_count
              << " tokens; the text encoder takes 75, so this part was cut: \"" << tokens.truncated_text << "\"\n";
  else if (tokens.chunks.size() > 1)
    std::cerr << "note: " << label << " is " << tokens.token_count << " tokens, encoded as " << tokens.chunks.size()
              << " chunks of 75 (A1111 style; --truncate_prompts cuts at 75 as diffusers does)\n";
  if (flags.options().weighting == text::PromptWeighting::A1111 &&
      (prompt.find('(') != std::string::npos || prompt.find('[') != std::string::npos))
    std::cerr << "note: with --prompt_weighting a1111, ( ) and [ ] set emphasis; write \\( \\) for literal "
                 "brackets, e.g. a trigger token \\(lora-misato-token\\)\n";
}

}  // namespace sdtune::cli
