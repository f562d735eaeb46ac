// sdtune generate: text-to-image, the same image as diffusers for the same seed.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/file_hash.h"
#include "io/input_file.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"
#include "pipeline/image_output.h"
#include "pipeline/infotext.h"
#include "lora/lora_file.h"
#include "lora/lora_merge.h"
#include "text/lora_tags.h"

namespace fs = std::filesystem;

namespace sdtune::cli {

namespace {

struct GenerateFlags {
  ModelFlags model;
  PromptFlags prompt;
  EmbeddingFlags embeddings;
  DeviceFlags device;
  std::string text, negative;
  std::string scheduler;
  bool karras = false;
  double eta = 0.0;
  int64_t steps = 50;
  double guidance_scale = 7.5, guidance_rescale = 0.0;
  int64_t width = 0, height = 0;
  c10::optional<uint64_t> seed;
  int64_t num_images = 1, batch_size = 0;
  std::string output = "output.png";
  bool overwrite = false;
  std::string init_latents, save_latents;
  bool vae_tiling = false;
  std::vector<std::string> loras;
  std::string lora_dir;
  bool lora_allow_partial = false;
};

// NAME of a <lora:NAME> tag as a file inside `folder`: a prompt (perhaps from someone else) must not
// read files elsewhere, so absolute names, ".." and links that lead out of the folder are refused.
std::string lora_in_folder(const std::string& folder, const std::string& name) {
  const fs::path file = fs::path(folder) / (fs::path(name).extension() == ".safetensors" ? name : name + ".safetensors");
  // An absolute NAME replaces the folder in the join: nests_inside then refuses it too.
  if (!io::nests_inside(folder, file.string()))
    throw Error("--prompt", "<lora:" + name + "> names a file outside --lora_dir " + folder + " (tags may only name LoRAs inside it)");
  return file.string();
}

// The name A1111 knows a model or LoRA by: a file's name without extension, else (a folder such as one
// holding pytorch_lora_weights.safetensors, a Hub id) the folder's or repository's name.
std::string a1111_name(const std::string& spec) {
  std::error_code ec;
  const fs::path p = fs::path(spec).has_filename() ? fs::path(spec) : fs::path(spec).parent_path();
  return fs::is_regular_file(p, ec) ? p.stem().string() : p.filename().string();
}

struct AppliedLora {
  std::string name;  // as A1111 knows it (the prompt tag's NAME for a tag)
  double weight;
  std::string path;
  bool from_tag;
};

// --lora flags and <lora:NAME:WEIGHT> prompt tags (resolved in --lora_dir), merged into the model.
std::vector<AppliedLora> apply_loras(const GenerateFlags& f, const std::vector<text::LoraTag>& tags, lora::LoraMerger& merger) {
  std::vector<AppliedLora> wanted;
  for (const auto& flag : f.loras) {
    const auto [spec, weight] = lora::parse_lora_flag(flag);
    wanted.push_back({a1111_name(spec), weight, spec, false});
  }
  for (const auto& tag : tags) {
    if (f.lora_dir.empty()) throw Error("--prompt", "uses <lora:" + tag.name + "> but no --lora_dir says where LoRAs are");
    wanted.push_back({tag.name, tag.weight, lora_in_folder(f.lora_dir, tag.name), true});
  }
  for (auto& applied : wanted) {
    const auto file = lora::read_lora(applied.path);
    applied.path = file.path;
    const auto report = merger.merge(file, applied.weight, f.lora_allow_partial);
    std::cerr << "LoRA " << file.path << " (" << file.format << ", weight " << applied.weight << "): " << report.unet_modules
              << " UNet and " << report.text_encoder_modules << " text-encoder modules";
    if (!report.skipped.empty()) std::cerr << ", " << report.skipped.size() << " modules matched nothing and were skipped";
    std::cerr << "\n";
  }
  return wanted;
}

// What A1111 and civitai read beyond the settings: --lora LoRAs as <lora:> tags in the prompt (pasting
// it into A1111 keeps them), and the hashes of the checkpoint, the LoRAs and the embeddings.
void describe_networks(const io::ModelFiles& files, const std::vector<AppliedLora>& loras,
                       const std::vector<embeddings::Embedding>& embeddings, pipeline::Infotext* info) {
  if (files.is_single_file()) info->model_hash = io::cached_sha256_of_file(files.path());
  for (const auto& lora : loras) {
    if (!lora.from_tag) info->prompt += " " + pipeline::lora_tag(lora.name, lora.weight);
    info->lora_hashes.push_back({lora.name, io::addnet_hash_of_safetensors(lora.path)});
  }
  for (const auto& e : embeddings) info->ti_hashes.push_back({e.token, io::sha256_of_file(e.path)});
}

// out.png for one image; out-1.png, out-2.png, ... for several.
std::vector<std::string> output_paths(const std::string& output, int64_t count) {
  if (count == 1) return {output};
  const fs::path p(output);
  std::vector<std::string> paths;
  for (int64_t i = 1; i <= count; ++i)
    paths.push_back((p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string())).string());
  return paths;
}

double peak_memory_gb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / (1024.0 * 1024.0);
}


void run(const GenerateFlags& f) {
  const auto paths = output_paths(f.output, f.num_images);
  for (const auto& path : paths) {
    if (fs::path(path).extension() != ".png") throw Error("--output", "must end in .png: " + path);
    refuse_existing_output(path, f.overwrite);
  }
  if (!f.save_latents.empty()) refuse_existing_output(f.save_latents, f.overwrite);
  const uint64_t seed = f.seed ? *f.seed : std::random_device{}() % 4294967296ULL;
  if (!f.seed) std::cerr << "seed: " << seed << "\n";

  const auto load_start = std::chrono::steady_clock::now();
  const io::ModelFiles files = f.model.open();
  const auto load = f.device.load_options(f.model.variant);
  auto model = pipeline::load_stable_diffusion(files, load);
  schedulers::SchedulerOptions scheduler_options;
  if (f.karras) scheduler_options.use_karras_sigmas = true;
  scheduler_options.eta = f.eta;
  auto scheduler = schedulers::make_scheduler(f.scheduler, files.component_config("scheduler"), scheduler_options,
                                              files.component_config_path("scheduler"));
  const auto tagged = text::extract_lora_tags(f.text);
  const auto embeddings = f.embeddings.apply({tagged.prompt, f.negative}, *model.tokenizer, model.text_encoder);
  std::vector<AppliedLora> loras;
  {  // merged for good: the merger (and its references to the text encoder's weights) goes now
    lora::LoraMerger merger(*model.unet, *model.text_encoder);
    loras = apply_loras(f, tagged.loras, merger);
  }
  // Options that only some samplers have are refused elsewhere rather than silently ignored.
  if (f.eta > 0 && scheduler->name() != "ddim") throw Error("--eta", "only applies to --scheduler ddim (this run uses " + scheduler->name() + ")");
  static const std::set<std::string> karras_samplers{"euler", "lms", "heun", "dpmpp_2m", "unipc"};
  if (f.karras && !karras_samplers.count(scheduler->name()))
    throw Error("--karras", "does not apply to " + scheduler->name() + " (as in diffusers: euler, lms, heun, dpmpp_2m or unipc)");
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  pipeline::GenerationRequest request;
  request.prompt = tagged.prompt;
  request.negative_prompt = f.negative;
  request.prompt_options = f.prompt.options();
  request.clip_skip = f.prompt.clip_skip;
  request.steps = f.steps;
  request.guidance_scale = f.guidance_scale;
  request.guidance_rescale = f.guidance_rescale;
  request.width = f.width;
  request.height = f.height;
  request.num_images = f.num_images;
  request.batch_size = f.batch_size;
  request.seed = seed;
  request.vae_tiling = f.vae_tiling;
  request.free_components_when_done = true;
  if (!f.init_latents.empty()) {
    request.init_latents = io::read_tensor(io::SafetensorsFile(f.init_latents), "latents", at::kFloat);
    if (!io::all_finite(request.init_latents))
      throw Error(f.init_latents, "tensor \"latents\" holds NaN or infinite values");
  }

  std::unique_ptr<ProgressBar> progress;
  const auto result = pipeline::generate(model, *scheduler, request, [&](int64_t done, int64_t total, const at::Tensor&) {
    if (!progress) progress = std::make_unique<ProgressBar>("Sampling", total);
    progress->update(done);
  });
  if (progress) progress->finish();
  report_prompt("the prompt", f.text, result.prompt_tokens, f.prompt);
  report_prompt("the negative prompt", f.negative, result.negative_tokens, f.prompt);

  if (!f.save_latents.empty())
    io::save_tensors(f.save_latents, {{"latents", result.latents.to(torch::kFloat).cpu()}}, {{"seed", std::to_string(seed)}});

  pipeline::Infotext info = pipeline::describe_generation(request, result, scheduler->name(), a1111_name(f.model.spec.model));
  info.prompt = f.text;  // with its <lora:...> tags
  info.karras = f.karras;
  info.eta = scheduler->name() == "ddim" ? f.eta : 0.0;
  describe_networks(files, loras, embeddings, &info);
  const auto images = pipeline::to_rgb8(result.images);
  for (size_t i = 0; i < images.size(); ++i) {
    info.batch_pos = int64_t(i);
    io::write_png(paths[i], images[i], {{"parameters", info.format()}});
    std::cout << "wrote " << paths[i] << "\n";
  }
  const double per_step = result.sampling_seconds / double(scheduler->num_steps());
  std::fprintf(stderr, "load %.1fs, sampling %.1fs (%.2fs/step), decode %.1fs, peak memory %.2f GiB\n", load_seconds,
               result.sampling_seconds, per_step, result.decode_seconds, peak_memory_gb());
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* sub = app.add_subcommand("generate", "text-to-image: generate PNG images from a prompt");
  f->model.add_to(sub, "--model", {/*vae=*/true, /*prediction_type=*/true});
  sub->add_option("--prompt", f->text, "prompt text")->required();
  sub->add_option("--negative_prompt", f->negative, "what to steer away from (empty: unconditional)");
  std::string names;
  for (const auto& n : schedulers::scheduler_names()) names += (names.empty() ? "" : "|") + n;
  sub->add_option("--scheduler", f->scheduler, "sampler: " + names + " (default: the model's scheduler)")
      ->check(CLI::IsMember(schedulers::scheduler_names()));
  sub->add_flag("--karras", f->karras, "Karras sigma schedule (use_karras_sigmas) for euler, lms, heun, dpmpp_2m, unipc");
  sub->add_option("--eta", f->eta, "DDIM eta (0 = deterministic)")->check(number_in(0, 1))->capture_default_str();
  sub->add_option("--num_inference_steps", f->steps, "denoising steps")->check(CLI::Range(1, 1000))->capture_default_str();
  sub->add_option("--guidance_scale", f->guidance_scale, "classifier-free guidance scale (<= 1 disables it)")->check(number_in(-100, 100))->capture_default_str();
  sub->add_option("--guidance_rescale", f->guidance_rescale, "rescale guided noise (Lin et al. 2023), 0..1")
      ->check(number_in(0, 1))
      ->capture_default_str();
  sub->add_option("--width", f->width, "image width (default: the model's sample size)")->check(CLI::Range(int64_t(1), int64_t(16384)));
  sub->add_option("--height", f->height, "image height (default: the model's sample size)")->check(CLI::Range(int64_t(1), int64_t(16384)));
  sub->add_option("--seed", f->seed, "random seed (default: a random one, printed and stored in the PNG)")->check(seed_number());
  sub->add_option("--num_images", f->num_images, "images per prompt (one batched draw, as diffusers' num_images_per_prompt)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub->add_option("--batch_size", f->batch_size, "at most this many images through the UNet at once (default: all)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--output", f->output, "output PNG; several images become NAME-1.png, NAME-2.png, ...")->capture_default_str();
  sub->add_flag("--overwrite", f->overwrite, "replace existing output files (--output, --save_latents; never a file the run reads)");
  sub->add_option("--init_latents", f->init_latents, "safetensors file with tensor \"latents\" (unit variance) to start from");
  sub->add_option("--save_latents", f->save_latents, "write the final latents (before VAE decode) as tensor \"latents\"");
  sub->add_flag("--vae_tiling", f->vae_tiling, "decode large images tile by tile to bound memory");
  sub->add_option("--lora", f->loras, "LoRA file, folder or Hub id, optionally :WEIGHT (repeatable)");
  sub->add_option("--lora_dir", f->lora_dir, "folder where <lora:NAME:WEIGHT> prompt tags find NAME.safetensors");
  sub->add_flag("--lora_allow_partial", f->lora_allow_partial, "skip LoRA modules that match nothing instead of failing");
  f->prompt.add_to(sub);
  f->embeddings.add_to(sub);
  f->device.add_to(sub);
  sub->callback([f] { run(*f); });
}

}  // namespace sdtune::cli
