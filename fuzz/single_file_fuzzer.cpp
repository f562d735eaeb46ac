// Single-file (LDM layout) checkpoints and separate VAE files: the family decision from keys and
// shapes, then tensors found through each component's key map (q/k/v thirds of OpenCLIP's in_proj,
// 1x1 convolutions read as linears) and read, as model loading does.
#include <ATen/ATen.h>

#include "fuzz_support.h"
#include "io/model_families.h"
#include "io/single_file_checkpoint.h"
#include "io/tensor_io.h"

namespace {

using namespace sdtune;

// Names of every kind the key maps treat differently (resnet members, attentions, samplers, fused parts).
const char* const kNames[] = {
    "conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.norm1.weight",
    "down_blocks.0.resnets.1.conv_shortcut.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
    "down_blocks.0.downsamplers.0.conv.weight", "mid_block.attentions.0.proj_in.weight", "mid_block.resnets.1.time_emb_proj.bias",
    "up_blocks.0.upsamplers.0.conv.weight", "up_blocks.1.attentions.2.proj_out.weight", "conv_out.bias",
    "encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.conv_shortcut.weight", "encoder.mid_block.attentions.0.to_q.weight",
    "decoder.mid_block.attentions.0.to_out.0.weight", "decoder.up_blocks.0.upsamplers.0.conv.bias", "quant_conv.weight",
    "text_model.embeddings.position_embedding.weight", "text_model.encoder.layers.0.self_attn.q_proj.weight",
    "text_model.encoder.layers.0.self_attn.v_proj.bias", "text_model.encoder.layers.1.mlp.fc2.weight", "text_model.final_layer_norm.bias",
};

void read_found(const io::SafetensorsSet& weights) {
  for (const char* name : kNames) {
    const auto found = weights.find(name);
    if (!found.entry) continue;
    const at::Tensor tensor = io::read_tensor(*found.file, *found.entry, at::kFloat);
    if (tensor.numel() != found.entry->numel()) abort();  // a view must cover exactly its bytes
    io::all_finite(tensor);
    weights.shown_name(name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_scratch_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  const io::ModelFamily& fallback = io::model_family("sd15", "fuzz");
  fuzz::expect_success_or_error([&] {
    const io::SingleFileCheckpoint checkpoint(path);
    for (const char* prediction : {"", "epsilon"}) {
      const auto guess = checkpoint.guess_family(prediction);
      const io::ModelFamily& family = guess.family.empty() ? fallback : io::model_family(guess.family, path);
      fuzz::expect_success_or_error([&] { read_found(checkpoint.unet(family.unet, "unet config")); });
      fuzz::expect_success_or_error([&] { read_found(checkpoint.vae(family.vae, "vae config")); });
      fuzz::expect_success_or_error([&] { read_found(checkpoint.text_encoder()); });
    }
  });
  fuzz::expect_success_or_error([&] { read_found(io::vae_file_weights(path, fallback.vae, "vae config")); });
  return 0;
}
