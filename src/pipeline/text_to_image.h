// StableDiffusionPipeline's text-to-image loop: encode prompt and negative prompt, draw the initial
// latents from the seeded CPU generator, denoise with classifier-free guidance, decode with the VAE.
// Same seed, same latents, same image as diffusers on CPU.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

#include "models/clip_text.h"
#include "pipeline/infotext.h"
#include "models/unet/unet_2d_condition.h"
#include "models/vae/autoencoder_kl.h"
#include "schedulers/scheduler.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_chunks.h"

namespace sdtune::pipeline {

struct StableDiffusion {
  std::unique_ptr<text::ClipTokenizer> tokenizer;
  models::ClipTextModel text_encoder{nullptr};
  models::UNet2DCondition unet{nullptr};
  models::AutoencoderKL vae{nullptr};

  int64_t vae_scale_factor() const { return vae->config().downscale_factor(); }
  // diffusers' default size: the UNet's sample_size times the VAE scale factor.
  int64_t default_size() const { return unet->config().sample_size * vae_scale_factor(); }
};

struct GenerationRequest {
  std::string prompt;
  std::string negative_prompt;  // empty: the unconditional (empty) prompt
  text::PromptOptions prompt_options;
  int64_t clip_skip = 0;
  int64_t steps = 50;
  double guidance_scale = 7.5;
  double guidance_rescale = 0.0;
  int64_t width = 0, height = 0;  // 0: default_size()
  int64_t num_images = 1;         // diffusers' num_images_per_prompt: one batched draw
  int64_t batch_size = 0;         // at most this many images through the UNet at once (0: all)
  uint64_t seed = 0;
  at::Tensor init_latents;        // unit-variance latents [N, C, h, w]; undefined: drawn from the seed
  bool vae_tiling = false;
  // One-shot runs free each component once done with it: the text encoder after the prompts (SD 2's
  // is 1.4 GB in fp32), the UNet before decoding (3.5 GB). The model is then unusable for another run.
  bool free_components_when_done = false;
};

struct GenerationResult {
  at::Tensor latents;  // final latents before decoding (diffusers' output_type="latent")
  at::Tensor images;   // [N, 3, H, W] in [0, 1] (output_type="pt")
  text::TokenizedPrompt prompt_tokens, negative_tokens;
  double sampling_seconds = 0, decode_seconds = 0;
};

// Called with completed = 0 before the first scheduler step, then after every step with the number
// of steps done and the latents.
using StepCallback = std::function<void(int64_t completed, int64_t total, const at::Tensor& latents)>;

// Checks sizes and counts, then runs. `scheduler` must be freshly configured for the model.
GenerationResult generate(StableDiffusion& model, schedulers::Scheduler& scheduler, const GenerationRequest& request,
                          const StepCallback& on_step = nullptr);

// The A1111 parameters of a finished request: prompt, sampler, steps, guidance, seed, size (of the
// images made), clip skip, emphasis and batch size. Callers add what the request does not know
// (Karras, eta, LoRAs, the prompt as typed).
Infotext describe_generation(const GenerationRequest& request, const GenerationResult& result, const std::string& scheduler,
                             const std::string& model);

// Latents in [N, C, H, W] decoded to images in [0, 1].
at::Tensor decode_latents(models::AutoencoderKL& vae, const at::Tensor& latents, bool tiling);

// diffusers' rescale_noise_cfg (Lin et al. 2023, section 3.4).
at::Tensor rescale_noise_cfg(const at::Tensor& guided, const at::Tensor& text, double guidance_rescale);

}  // namespace sdtune::pipeline
