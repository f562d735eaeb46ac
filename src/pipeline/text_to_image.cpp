#include "pipeline/text_to_image.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>

#include "core/error.h"
#include "core/runtime.h"
#include "models/common/conv2d.h"
#include "pipeline/prompt_encoder.h"

namespace sdtune::pipeline {

namespace {

// CUDA runs queued work asynchronously: wait for it, so the time is that of the work, not of queueing it.
double seconds_since(std::chrono::steady_clock::time_point start, const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_request(const StableDiffusion& model, const GenerationRequest& r, int64_t width, int64_t height) {
  const int64_t factor = std::max<int64_t>(8, model.vae_scale_factor());
  for (const auto& [flag, value] : {std::pair<const char*, int64_t>{"--width", width}, {"--height", height}})
    if (value < factor || value > 16384 || value % factor != 0)
      throw Error(flag, "must be a multiple of " + std::to_string(factor) + " between " + std::to_string(factor) +
                            " and 16384, got " + std::to_string(value));
  if (r.steps < 1 || r.steps > 1000) throw Error("--num_inference_steps", "must be between 1 and 1000");
  if (r.num_images < 1 || r.num_images > 1024) throw Error("--num_images", "must be between 1 and 1024");
  if (r.batch_size < 0) throw Error("--batch_size", "must be positive");
  if (!std::isfinite(r.guidance_scale)) throw Error("--guidance_scale", "must be a number");
  if (!(r.guidance_rescale >= 0 && r.guidance_rescale <= 1)) throw Error("--guidance_rescale", "must be between 0 and 1");
}

}  // namespace

at::Tensor rescale_noise_cfg(const at::Tensor& guided, const at::Tensor& text, double guidance_rescale) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < text.dim(); ++d) dims.push_back(d);
  const at::Tensor std_text = text.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor std_cfg = guided.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor rescaled = guided * (std_text / std_cfg);
  return guidance_rescale * rescaled + (1 - guidance_rescale) * guided;
}

at::Tensor decode_latents(models::AutoencoderKL& vae, const at::Tensor& latents, bool tiling) {
  torch::InferenceMode inference;
  const at::Tensor raw = latents.to(vae->parameters().front().scalar_type()) / vae->config().scaling_factor;
  const int64_t tile_latent = vae->config().sample_size / vae->config().downscale_factor();
  const bool use_tiles = tiling && (raw.size(2) > tile_latent || raw.size(3) > tile_latent);
  std::vector<at::Tensor> images;  // one image at a time bounds the decoder's memory
  for (int64_t i = 0; i < raw.size(0); ++i) {
    const at::Tensor one = raw.slice(0, i, i + 1);
    images.push_back(use_tiles ? vae->tiled_decode(one) : vae->decode(one));
  }
  return (torch::cat(images, 0).to(torch::kFloat) / 2 + 0.5).clamp(0, 1);
}

GenerationResult generate(StableDiffusion& model, schedulers::Scheduler& scheduler, const GenerationRequest& r,
                          const StepCallback& on_step) {
  // 0 means the model's size; a negative one is a mistake, not a request for the default.
  const int64_t width = r.width == 0 ? model.default_size() : r.width;
  const int64_t height = r.height == 0 ? model.default_size() : r.height;
  check_request(model, r, width, height);
  torch::InferenceMode inference;
  const auto parameter = model.unet->parameters().front();
  const auto device = parameter.device();
  const auto dtype = parameter.scalar_type();
  GenerationResult result;

  // Prompt and negative prompt, padded to the same number of 75-token chunks.
  result.prompt_tokens = text::tokenize_prompt(*model.tokenizer, r.prompt, r.prompt_options);
  result.negative_tokens = text::tokenize_prompt(*model.tokenizer, r.negative_prompt, r.prompt_options, "the negative prompt");
  const size_t chunks = std::max(result.prompt_tokens.chunks.size(), result.negative_tokens.chunks.size());
  text::pad_to_chunk_count(*model.tokenizer, chunks, &result.prompt_tokens);
  text::pad_to_chunk_count(*model.tokenizer, chunks, &result.negative_tokens);
  const at::Tensor cond = encode_prompt(model.text_encoder, result.prompt_tokens, r.clip_skip).to(dtype);
  const bool guidance = r.guidance_scale > 1.0;
  const at::Tensor uncond = guidance ? encode_prompt(model.text_encoder, result.negative_tokens, r.clip_skip).to(dtype) : at::Tensor();
  if (r.free_components_when_done) {
    model.text_encoder = models::ClipTextModel(nullptr);
    return_free_memory_to_system();
  }

  scheduler.set_timesteps(r.steps);
  const int64_t channels = model.unet->config().in_channels;
  const std::vector<int64_t> shape{r.num_images, channels, height / model.vae_scale_factor(), width / model.vae_scale_factor()};
  // The pipeline's CPU generator: initial latents first, then any per-step noise, as diffusers draws them.
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(r.seed);
  at::Tensor latents;
  if (r.init_latents.defined()) {
    if (r.init_latents.sizes() != at::IntArrayRef(shape))
      throw Error("--init_latents", "tensor \"latents\" has the wrong shape for this size and --num_images");
    latents = r.init_latents.to(torch::kFloat);
  } else {
    latents = at::randn(shape, generator, torch::kFloat);
  }
  latents = (latents * scheduler.init_noise_sigma()).to(device);

  const int64_t batch = r.batch_size > 0 ? std::min(r.batch_size, r.num_images) : r.num_images;
  const auto start = std::chrono::steady_clock::now();
  if (on_step) on_step(0, scheduler.num_steps(), latents);
  for (int64_t i = 0; i < scheduler.num_steps(); ++i) {
    const at::Tensor t = scheduler.timesteps()[i].to(device);
    const at::Tensor model_input = scheduler.scale_model_input(latents, i).to(dtype);
    // The UNet sees at most `batch` images (2x with guidance) at once; the scheduler steps them all
    // together so that stochastic samplers draw the same noise as one big batch would.
    std::vector<at::Tensor> predictions;
    for (int64_t b = 0; b < r.num_images; b += batch) {
      const at::Tensor x = model_input.slice(0, b, std::min(r.num_images, b + batch));
      const int64_t n = x.size(0);
      if (!guidance) {
        predictions.push_back(model.unet->forward(x, t, cond.expand({n, -1, -1})));
        continue;
      }
      const at::Tensor context = torch::cat({uncond.expand({n, -1, -1}), cond.expand({n, -1, -1})});
      const auto halves = model.unet->forward(torch::cat({x, x}), t, context).chunk(2);
      at::Tensor guided = halves[0] + r.guidance_scale * (halves[1] - halves[0]);
      if (r.guidance_rescale > 0) guided = rescale_noise_cfg(guided, halves[1], r.guidance_rescale);
      predictions.push_back(guided);
    }
    const at::Tensor noise_pred = predictions.size() == 1 ? predictions[0] : torch::cat(predictions);
    latents = scheduler.step(noise_pred.to(torch::kFloat), i, latents.to(torch::kFloat), generator);
    if (on_step) on_step(i + 1, scheduler.num_steps(), latents);
  }
  result.sampling_seconds = seconds_since(start, device);
  result.latents = latents;
  // The UNet's packed Winograd weights (~1 GB for SD 2) would sit beside the VAE's; they are rebuilt
  // at the UNet's next call if there is one.
  if (r.free_components_when_done)
    model.unet = models::UNet2DCondition(nullptr);
  else
    models::release_packed_weights(*model.unet);
  return_free_memory_to_system();

  const auto decode_start = std::chrono::steady_clock::now();
  result.images = decode_latents(model.vae, latents, r.vae_tiling);
  result.decode_seconds = seconds_since(decode_start, device);
  return result;
}

Infotext describe_generation(const GenerationRequest& request, const GenerationResult& result, const std::string& scheduler,
                             const std::string& model) {
  Infotext info;
  info.prompt = request.prompt;
  info.negative_prompt = request.negative_prompt;
  info.steps = request.steps;
  info.scheduler = scheduler;
  info.guidance_scale = request.guidance_scale;
  info.guidance_rescale = request.guidance_rescale;
  info.seed = request.seed;
  info.width = result.images.size(3);
  info.height = result.images.size(2);
  info.model = model;
  info.clip_skip = request.clip_skip;
  info.emphasis = request.prompt_options.weighting == text::PromptWeighting::A1111;
  info.batch_size = request.num_images;
  return info;
}

}  // namespace sdtune::pipeline
