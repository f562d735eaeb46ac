// Single-file (LDM layout) checkpoints: the key maps, the family decision, loading equal to diffusers'
// from_single_file, conversion both ways, separate VAEs. References: scripts/make_single_file_fixtures.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "io/checkpoint_keys.h"
#include "io/model_families.h"
#include "io/model_files.h"
#include "io/single_file_checkpoint.h"
#include "io/tensor_io.h"
#include "pipeline/components.h"
#include "pipeline/image_output.h"
#include "pipeline/model_export.h"
#include "schedulers/scheduler.h"
#include "test_util.h"
#include "torch_test_util.h"

namespace fs = std::filesystem;
using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

std::string single_file(const std::string& name) { return data_path("single_file/" + name); }

std::string stored(const sdtune::io::KeyMap& map, const std::string& name) { return map.original_of(name).name; }

TEST(CheckpointKeys, UnetNamesAreTheOriginalOnesOfStableDiffusion) {
  const auto map = sdtune::io::unet_key_map(sdtune::io::model_family("sd15", "test").unet, "sd15");
  const std::string p = "model.diffusion_model.";
  EXPECT_EQ(stored(map, "conv_in.weight"), p + "input_blocks.0.0.weight");
  EXPECT_EQ(stored(map, "time_embedding.linear_2.bias"), p + "time_embed.2.bias");
  EXPECT_EQ(stored(map, "down_blocks.1.resnets.0.norm1.weight"), p + "input_blocks.4.0.in_layers.0.weight");
  EXPECT_EQ(stored(map, "down_blocks.1.resnets.0.conv_shortcut.weight"), p + "input_blocks.4.0.skip_connection.weight");
  EXPECT_EQ(stored(map, "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight"),
            p + "input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight");
  EXPECT_EQ(stored(map, "down_blocks.0.downsamplers.0.conv.weight"), p + "input_blocks.3.0.op.weight");
  EXPECT_EQ(stored(map, "down_blocks.3.resnets.1.time_emb_proj.weight"), p + "input_blocks.11.0.emb_layers.1.weight");
  EXPECT_EQ(stored(map, "mid_block.resnets.1.conv2.bias"), p + "middle_block.2.out_layers.3.bias");
  EXPECT_EQ(stored(map, "mid_block.attentions.0.proj_in.weight"), p + "middle_block.1.proj_in.weight");
  EXPECT_EQ(stored(map, "up_blocks.0.upsamplers.0.conv.weight"), p + "output_blocks.2.1.conv.weight");
  EXPECT_EQ(stored(map, "up_blocks.1.upsamplers.0.conv.weight"), p + "output_blocks.5.2.conv.weight");
  EXPECT_EQ(stored(map, "up_blocks.3.attentions.2.norm.weight"), p + "output_blocks.11.1.norm.weight");
  EXPECT_EQ(stored(map, "up_blocks.3.resnets.2.conv_shortcut.weight"), p + "output_blocks.11.0.skip_connection.weight");
  EXPECT_EQ(stored(map, "conv_norm_out.weight"), p + "out.0.weight");
  EXPECT_EQ(stored(map, "conv_out.bias"), p + "out.2.bias");
  EXPECT_EQ(stored(map, "no_such_module.weight"), "");
}

TEST(CheckpointKeys, VaeAndTextEncoderNamesAreTheOriginalOnes) {
  const auto vae = sdtune::io::vae_key_map(sdtune::io::model_family("sd2", "test").vae, sdtune::io::kLdmVaePrefix, "vae");
  EXPECT_EQ(stored(vae, "decoder.up_blocks.0.resnets.0.conv1.weight"), "first_stage_model.decoder.up.3.block.0.conv1.weight");
  EXPECT_EQ(stored(vae, "decoder.up_blocks.3.upsamplers.0.conv.bias"), "first_stage_model.decoder.up.0.upsample.conv.bias");
  EXPECT_EQ(stored(vae, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"), "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight");
  EXPECT_EQ(stored(vae, "encoder.down_blocks.2.downsamplers.0.conv.weight"), "first_stage_model.encoder.down.2.downsample.conv.weight");
  EXPECT_EQ(stored(vae, "encoder.mid_block.resnets.1.norm2.weight"), "first_stage_model.encoder.mid.block_2.norm2.weight");
  EXPECT_EQ(stored(vae, "encoder.conv_norm_out.bias"), "first_stage_model.encoder.norm_out.bias");
  const auto q = vae.original_of("decoder.mid_block.attentions.0.to_q.weight");
  EXPECT_EQ(q.name, "first_stage_model.decoder.mid.attn_1.q.weight");
  EXPECT_TRUE(q.conv1x1);
  EXPECT_EQ(stored(vae, "decoder.mid_block.attentions.0.to_out.0.bias"), "first_stage_model.decoder.mid.attn_1.proj_out.bias");
  EXPECT_EQ(stored(vae, "decoder.mid_block.attentions.0.group_norm.weight"), "first_stage_model.decoder.mid.attn_1.norm.weight");

  const auto open_clip = sdtune::io::open_clip_key_map(sdtune::io::kLdmOpenClipPrefix);
  const auto k = open_clip.original_of("text_model.encoder.layers.22.self_attn.k_proj.weight");
  EXPECT_EQ(k.name, "cond_stage_model.model.transformer.resblocks.22.attn.in_proj_weight");
  EXPECT_EQ(k.part, 1);
  EXPECT_EQ(k.parts, 3);
  EXPECT_EQ(stored(open_clip, "text_model.encoder.layers.0.mlp.fc2.bias"), "cond_stage_model.model.transformer.resblocks.0.mlp.c_proj.bias");
  EXPECT_EQ(stored(open_clip, "text_model.encoder.layers.3.layer_norm1.weight"), "cond_stage_model.model.transformer.resblocks.3.ln_1.weight");
  EXPECT_EQ(stored(open_clip, "text_model.embeddings.position_embedding.weight"), "cond_stage_model.model.positional_embedding");
  EXPECT_EQ(stored(open_clip, "text_model.final_layer_norm.bias"), "cond_stage_model.model.ln_final.bias");
  const auto clip = sdtune::io::clip_text_key_map(sdtune::io::kLdmClipPrefix);
  EXPECT_EQ(stored(clip, "text_model.encoder.layers.0.self_attn.q_proj.weight"),
            "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight");
}

// A file with just the tensors the family decision looks at, in the real shapes.
std::string write_shape_probe(const sdtune::test::TempDir& dir, const std::string& name, int64_t channels, int64_t context,
                              const std::string& extra_key = "") {
  sdtune::io::TensorMap tensors = {
      {"model.diffusion_model.input_blocks.0.0.weight", torch::zeros({320, channels, 3, 3}, torch::kHalf)},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", torch::zeros({320, context}, torch::kHalf)}};
  if (!extra_key.empty()) tensors.emplace(extra_key, torch::zeros({1}));
  const std::string path = dir.file(name);
  sdtune::io::save_tensors(path, tensors);
  return path;
}

TEST(SingleFile, FamilyComesFromKeysAndShapesAsDiffusersTellsThem) {
  sdtune::test::TempDir dir;
  auto family_of = [&](const std::string& path, const std::string& prediction = "") {
    return sdtune::io::SingleFileCheckpoint(path).guess_family(prediction).family;
  };
  const auto sd2 = write_shape_probe(dir, "sd2.safetensors", 4, 1024);
  EXPECT_EQ(family_of(sd2), "sd2");  // 768-v, as diffusers assumes without a global_step
  EXPECT_EQ(family_of(sd2, "v_prediction"), "sd2");
  EXPECT_EQ(family_of(sd2, "epsilon"), "sd2-base");
  EXPECT_NE(sdtune::io::SingleFileCheckpoint(sd2).guess_family("").reason.find("--prediction_type epsilon"), std::string::npos);
  EXPECT_EQ(family_of(write_shape_probe(dir, "sd15.safetensors", 4, 768)), "sd15");
  EXPECT_EQ(family_of(write_shape_probe(dir, "sd15i.safetensors", 9, 768)), "sd15-inpainting");
  EXPECT_EQ(family_of(write_shape_probe(dir, "sd2i.safetensors", 9, 1024), "v_prediction"), "sd2-inpainting");
  EXPECT_EQ(family_of(write_shape_probe(dir, "odd.safetensors", 4, 640)), "");

  const std::string odd = sdtune::test::error_of([&] { sdtune::io::ModelFiles(dir.file("odd.safetensors")); });
  EXPECT_NE(odd.find("--config"), std::string::npos) << odd;
  EXPECT_NE(odd.find("cross-attention width 640"), std::string::npos) << odd;
  const std::string sdxl = sdtune::test::error_of([&] {
    sdtune::io::SingleFileCheckpoint(write_shape_probe(dir, "xl.safetensors", 4, 2048, "conditioner.embedders.1.model.ln_final.bias"));
  });
  EXPECT_NE(sdxl.find("SDXL"), std::string::npos) << sdxl;
  const std::string lora = sdtune::test::error_of([&] { sdtune::io::ModelFiles(data_path("tiny-sd1/lora_kohya/lora_kohya.safetensors")); });
  EXPECT_NE(lora.find("--lora"), std::string::npos) << lora;
  const std::string config_on_folder = sdtune::test::error_of([&] {
    sdtune::io::ModelFiles(sdtune::io::spec_of(data_path("tiny-sd1/pipeline"), data_path("tiny-sd1/pipeline")));
  });
  EXPECT_NE(config_on_folder.find("--config"), std::string::npos) << config_on_folder;
}

sdtune::io::ModelFiles tiny_single(const std::string& file, const std::string& variant) {
  return sdtune::io::ModelFiles(sdtune::io::spec_of(single_file(file), data_path(variant + "/pipeline")));
}

void expect_same_parameters(torch::nn::Module& a, torch::nn::Module& b, at::ScalarType stored) {
  const auto theirs = b.named_parameters();
  for (const auto& p : a.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), theirs[p.key()].to(stored).to(torch::kFloat))) << p.key();
}

struct SingleFileCase {
  std::string variant, file;
  at::ScalarType stored;
};

class SingleFileFixture : public ::testing::TestWithParam<SingleFileCase> {};

TEST_P(SingleFileFixture, LoadsTheFoldersWeightsAndGeneratesDiffusersLatents) {
  const auto& c = GetParam();
  const auto files = tiny_single(c.file, c.variant);
  auto model = sdtune::pipeline::load_stable_diffusion(files, {});
  auto folder_model = sdtune::pipeline::load_stable_diffusion(sdtune::io::ModelFiles(data_path(c.variant + "/pipeline")), {});
  expect_same_parameters(*model.unet, *folder_model.unet, c.stored);
  expect_same_parameters(*model.vae, *folder_model.vae, c.stored);
  expect_same_parameters(*model.text_encoder, *folder_model.text_encoder, c.stored);

  const auto refs = sdtune::io::read_all_tensors(single_file("references.safetensors"));
  const auto scheduler_config = files.component_config("scheduler");
  const std::string scheduler_name = scheduler_config["_class_name"] == "DDIMScheduler" ? "ddim" : "pndm";
  auto scheduler = sdtune::schedulers::make_scheduler(scheduler_name, scheduler_config, {}, "scheduler");
  const auto result = sdtune::pipeline::generate(model, *scheduler, sdtune::test::fixture_request(c.variant));
  EXPECT_LT(relative_error(result.latents, refs.at(c.variant + ".latents_seed")), 1e-3);
  const auto rgb = sdtune::pipeline::to_rgb8(result.images);
  const auto ours = torch::from_blob(const_cast<uint8_t*>(rgb[0].pixels.data()), {rgb[0].height, rgb[0].width, 3}, torch::kByte)
                        .permute({2, 0, 1}).to(torch::kFloat);
  EXPECT_LE((ours - refs.at(c.variant + ".image_seed")[0] * 255).abs().max().item<float>(), 2.0f);
}

TEST_P(SingleFileFixture, ConvertWritesTheSameFileAndConvertsBack) {
  const auto& c = GetParam();
  sdtune::test::TempDir dir;
  const std::string written = dir.file("again.safetensors");
  sdtune::pipeline::convert_model(sdtune::io::ModelFiles(data_path(c.variant + "/pipeline")), written, c.stored);
  const auto ours = sdtune::io::read_all_tensors(written), committed = sdtune::io::read_all_tensors(single_file(c.file));
  ASSERT_EQ(ours.size(), committed.size());
  for (const auto& [name, tensor] : committed) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_TRUE(torch::equal(ours.at(name), tensor)) << name;
  }
  // Back to a folder: the folder's weights in the file's dtype.
  const std::string folder = dir.file("folder");
  sdtune::pipeline::convert_model(tiny_single(c.file, c.variant), folder, at::kFloat);
  const sdtune::io::ModelFiles back(folder);
  auto unet = sdtune::pipeline::load_unet(back, {}), original = sdtune::pipeline::load_unet(sdtune::io::ModelFiles(data_path(c.variant + "/pipeline")), {});
  expect_same_parameters(*unet, *original, c.stored);
  EXPECT_EQ(back.component_config("scheduler"), sdtune::io::ModelFiles(data_path(c.variant + "/pipeline")).component_config("scheduler"));
}

INSTANTIATE_TEST_SUITE_P(Tiny, SingleFileFixture,
                         ::testing::Values(SingleFileCase{"tiny-sd1", "tiny-sd1.safetensors", at::kFloat},
                                           SingleFileCase{"tiny-sd2", "tiny-sd2.fp16.safetensors", at::kHalf}),
                         [](const auto& info) { return info.param.variant == "tiny-sd1" ? std::string("sd1_fp32") : std::string("sd2_fp16"); });

TEST(SingleFile, InpaintingUnetOfNineChannelsEqualsDiffusers) {
  const sdtune::io::ModelFiles files(sdtune::io::spec_of(single_file("tiny-sd1-inpainting.bf16.safetensors"), single_file("tiny-sd1-inpainting-config")));
  auto unet = sdtune::pipeline::load_unet(files, {});
  EXPECT_EQ(unet->config().in_channels, 9);
  const auto refs = sdtune::io::read_all_tensors(single_file("references.safetensors"));
  torch::NoGradGuard no_grad;
  const auto out = unet->forward(refs.at("inpainting.unet_input"), refs.at("inpainting.unet_timestep"), refs.at("inpainting.unet_context"));
  EXPECT_LT(relative_error(out, refs.at("inpainting.unet_output")), 1e-4);
}

TEST(SingleFile, HostileShapesAreRefusedNamingTheTensor) {
  sdtune::test::TempDir dir;
  sdtune::io::save_tensors(dir.file("x.safetensors"), {{"qkv", torch::zeros({4, 2})}, {"conv", torch::zeros({2, 2, 1, 1})}});
  const sdtune::io::SafetensorsFile file(dir.file("x.safetensors"));
  const sdtune::io::SafetensorsSet set(file, [](const std::string& name) {
    return name == "q" ? sdtune::io::StoredTensor{"qkv", 0, 3, false} : sdtune::io::StoredTensor{"conv", 0, 1, true};
  });
  const std::string message = sdtune::test::error_of([&] { set.find("q"); });
  EXPECT_NE(message.find("\"qkv\" of shape [4, 2] cannot be split into 3 equal parts"), std::string::npos) << message;
  const auto linear = set.find("linear");
  ASSERT_TRUE(linear.entry);
  EXPECT_EQ(linear.entry->shape, (std::vector<int64_t>{2, 2}));  // the 1x1 convolution read as a linear weight
  EXPECT_EQ(set.shown_name("linear"), "\"conv\" (diffusers \"linear\")");
}

TEST(SingleFile, SeparateVaeFromAFileOrAFolder) {
  sdtune::test::TempDir dir;
  // The VAE of the single file on its own, as ft-MSE VAEs are shipped (LDM names, no prefix).
  sdtune::io::TensorMap vae_only;
  for (const auto& [name, tensor] : sdtune::io::read_all_tensors(single_file("tiny-sd1.safetensors")))
    if (name.rfind("first_stage_model.", 0) == 0) vae_only.emplace(name.substr(18), tensor);
  sdtune::io::save_tensors(dir.file("vae.safetensors"), vae_only);
  auto reference = sdtune::pipeline::load_vae(sdtune::io::ModelFiles(data_path("tiny-sd1/pipeline")), {});
  for (const std::string& vae : {dir.file("vae.safetensors"), data_path("tiny-sd1/pipeline/vae"), data_path("tiny-sd1/pipeline")}) {
    sdtune::io::ModelSpec spec = sdtune::io::spec_of(data_path("tiny-sd1/pipeline"));
    spec.vae = vae;
    const sdtune::io::ModelFiles files(spec);
    EXPECT_NE(files.summary().find("--vae"), std::string::npos);
    auto loaded = sdtune::pipeline::load_vae(files, {});
    expect_same_parameters(*loaded, *reference, at::kFloat);
  }
  sdtune::io::ModelSpec wrong = sdtune::io::spec_of(data_path("tiny-sd1/pipeline"));
  wrong.vae = data_path("tiny-sd1/lora_kohya/lora_kohya.safetensors");
  const std::string message = sdtune::test::error_of([&] { sdtune::pipeline::load_vae(sdtune::io::ModelFiles(wrong), {}); });
  EXPECT_NE(message.find("is not a VAE"), std::string::npos) << message;
}

}  // namespace
