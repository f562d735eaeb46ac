#include "io/model_families.h"

#include "core/error.h"
#include "core/printable.h"

namespace sdtune::io {

namespace {

Json unet_config(bool sd2, int64_t sample_size, int64_t in_channels) {
  return {{"_class_name", "UNet2DConditionModel"},
          {"act_fn", "silu"},
          {"attention_head_dim", sd2 ? Json({5, 10, 20, 20}) : Json(8)},
          {"block_out_channels", {320, 640, 1280, 1280}},
          {"center_input_sample", false},
          {"cross_attention_dim", sd2 ? 1024 : 768},
          {"down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", in_channels},
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

Json text_encoder_config(bool sd2) {
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

Json vae_config(int64_t sample_size) {
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

// The schedulers of the Hub repositories: PNDM (SD 1.5, SD 2 base, the inpainting models) or DDIM
// (SD 2.1 768-v), "leading" spacing with steps_offset 1 as diffusers defaults.
Json scheduler_config(const std::string& cls, const std::string& prediction) {
  return {{"_class_name", cls},
          {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},
          {"clip_sample", false},
          {"num_train_timesteps", 1000},
          {"prediction_type", prediction},
          {"set_alpha_to_one", false},
          {"skip_prk_steps", true},
          {"steps_offset", 1},
          {"trained_betas", nullptr}};
}

std::vector<ModelFamily> make_families() {
  const std::string clip_pad = "<|endoftext|>", open_clip_pad = "!";
  return {
      {"sd15", "SD 1.x (512, epsilon)", "stable-diffusion-v1-5/stable-diffusion-v1-5", unet_config(false, 64, 4),
       vae_config(512), text_encoder_config(false), scheduler_config("PNDMScheduler", "epsilon"), clip_pad, false},
      {"sd15-inpainting", "SD 1.x inpainting (9-channel UNet)", "stable-diffusion-v1-5/stable-diffusion-inpainting",
       unet_config(false, 64, 9), vae_config(512), text_encoder_config(false), scheduler_config("PNDMScheduler", "epsilon"),
       clip_pad, false},
      {"sd2-base", "SD 2.x base (512, epsilon)", "stabilityai/stable-diffusion-2-base", unet_config(true, 64, 4), vae_config(512),
       text_encoder_config(true), scheduler_config("PNDMScheduler", "epsilon"), open_clip_pad, true},
      {"sd2", "SD 2.x (768, v-prediction)", "stabilityai/stable-diffusion-2-1", unet_config(true, 96, 4), vae_config(768),
       text_encoder_config(true), scheduler_config("DDIMScheduler", "v_prediction"), open_clip_pad, true},
      {"sd2-inpainting", "SD 2.x inpainting (9-channel UNet)", "stabilityai/stable-diffusion-2-inpainting",
       unet_config(true, 64, 9), vae_config(512), text_encoder_config(true), scheduler_config("PNDMScheduler", "epsilon"),
       open_clip_pad, true},
  };
}

const std::vector<ModelFamily>& families() {
  static const std::vector<ModelFamily> all = make_families();
  return all;
}

}  // namespace

const ModelFamily& model_family(const std::string& name, const std::string& where) {
  for (const auto& family : families())
    if (family.name == name) return family;
  std::string known;
  for (const auto& family : families()) known += (known.empty() ? "" : ", ") + family.name;
  throw Error(where, "unknown model family " + in_quotes(name) + " (known: " + known + ")");
}

std::vector<std::string> model_family_names() {
  std::vector<std::string> names;
  for (const auto& family : families()) names.push_back(family.name);
  return names;
}

}  // namespace sdtune::io
