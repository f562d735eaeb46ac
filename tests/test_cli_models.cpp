// The model files people have, from the command line: single-file checkpoints (with --config or a
// shipped family), sdtune convert, lora fuse of a single file, training on one, separate VAEs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli_run.h"
#include "io/png.h"
#include "io/safetensors.h"
#if SDTUNE_TEST_FAKE_HUB
#include "support/fake_hub.h"
#endif
#include "synthetic_dataset.h"
#include "test_util.h"

using sdtune::test::data_path;
using sdtune::test::run;

namespace {

std::string single_file(const std::string& name) { return data_path("single_file/" + name); }

// The fixture request of tiny-sd2 (tests/data/README.md), with the folder's default scheduler (DDIM).
const std::string kSd2Request =
    " --scheduler ddim --prompt 'photo of (lora-misato-token), smiling' --negative_prompt 'blurry, low quality'"
    " --num_inference_steps 10 --guidance_scale 6 --width 24 --height 32 --seed 1234";

std::vector<float> floats_of(const std::string& path, const std::string& name) {
  sdtune::io::SafetensorsFile file(path);
  const auto& entry = file.at(name);
  const float* data = reinterpret_cast<const float*>(file.data(entry));
  return std::vector<float>(data, data + entry.numel());
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) diff += double(a[i] - b[i]) * (a[i] - b[i]), norm += double(b[i]) * b[i];
  return a.size() == b.size() ? std::sqrt(diff / norm) : 1e9;
}

TEST(CliModels, SingleFileWithConfigGeneratesDiffusersLatents) {
  sdtune::test::TempDir dir;
  const auto r = run("generate --model " + single_file("tiny-sd2.fp16.safetensors") + " --config " + data_path("tiny-sd2/pipeline") +
                     kSd2Request + " --output " + dir.file("a.png") + " --save_latents " + dir.file("latents.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("note: " + single_file("tiny-sd2.fp16.safetensors") + ": single-file checkpoint, configs and tokenizer from"),
            std::string::npos) << r.output;
  // From diffusers' from_single_file of the same file (scripts/make_single_file_fixtures.py).
  sdtune::io::SafetensorsFile refs(single_file("references.safetensors"));
  const auto& entry = refs.at("tiny-sd2.latents_seed");
  const float* ref = reinterpret_cast<const float*>(refs.data(entry));
  EXPECT_LT(relative_difference(floats_of(dir.file("latents.safetensors"), "latents"), std::vector<float>(ref, ref + entry.numel())), 1e-3);

  // --vae: the folder's own VAE (fp32) in place of the file's (fp16): the note says so, the image is
  // within the fp16 rounding of the weights.
  const auto with_vae = run("generate --model " + single_file("tiny-sd2.fp16.safetensors") + " --config " + data_path("tiny-sd2/pipeline") +
                            " --vae " + data_path("tiny-sd2/pipeline/vae") + kSd2Request + " --output " + dir.file("b.png"));
  ASSERT_EQ(with_vae.exit_code, 0) << with_vae.output;
  EXPECT_NE(with_vae.output.find("VAE from " + data_path("tiny-sd2/pipeline/vae") + " (--vae)"), std::string::npos) << with_vae.output;
  const auto a = sdtune::io::read_png(dir.file("a.png")), b = sdtune::io::read_png(dir.file("b.png"));
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  EXPECT_LE(worst, 2);
}

TEST(CliModels, ShippedFamilyAndTokenizerForAFileWithoutConfig) {
  sdtune::test::TempDir dir;
  // The tensors the family decision reads, in SD 2's shapes (a real checkpoint is 5 GB).
  const std::string probe = dir.file("sd2.safetensors");
  std::vector<uint16_t> conv(320 * 4 * 9), to_k(320 * 1024);
  sdtune::io::write_safetensors(probe, {{"model.diffusion_model.input_blocks.0.0.weight", sdtune::io::DType::F16, {320, 4, 3, 3}, conv.data(), conv.size() * 2},
                                        {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", sdtune::io::DType::F16,
                                         {320, 1024}, to_k.data(), to_k.size() * 2}});
  auto r = run("tokenize --model " + probe + " --json --prompt 'a photo of a cat'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("single-file SD 2.x (768, v-prediction) checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"input_ids\":[49406,320,1125,539,320,2368,49407,0,0"), std::string::npos) << r.output;  // SD 2 pads with "!"
  r = run("generate --model " + probe + " --prediction_type epsilon --prompt x --output " + dir.file("x.png"));
  EXPECT_NE(r.output.find("SD 2.x base (512, epsilon)"), std::string::npos) << r.output;
  // The UNet's tensors are looked up under their original names before anything is allocated.
  EXPECT_NE(r.output.find("tensor \"model.diffusion_model.time_embed.0.weight\" (diffusers \"time_embedding.linear_1.weight\")"),
            std::string::npos) << r.output;
}

TEST(CliModels, ConvertBothWaysAndRefusals) {
  sdtune::test::TempDir dir;
  auto r = run("convert --model " + data_path("tiny-sd1/pipeline") + " --output " + dir.file("m.safetensors") + " --dtype fp16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  sdtune::io::SafetensorsFile file(dir.file("m.safetensors"));
  EXPECT_EQ(file.at("model.diffusion_model.input_blocks.0.0.weight").dtype, sdtune::io::DType::F16);
  EXPECT_TRUE(file.contains("first_stage_model.decoder.mid.attn_1.q.weight"));
  EXPECT_TRUE(file.contains("cond_stage_model.transformer.text_model.final_layer_norm.weight"));
  r = run("convert --model " + dir.file("m.safetensors") + " --config " + data_path("tiny-sd1/pipeline") + " --output " + dir.file("folder"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json",
                        "scheduler/scheduler_config.json", "text_encoder/model.safetensors", "vae/config.json"})
    EXPECT_TRUE(std::filesystem::exists(dir.file("folder/") + f)) << f;
  EXPECT_EQ(sdtune::io::SafetensorsFile(dir.file("folder/unet/diffusion_pytorch_model.safetensors")).at("conv_in.weight").dtype,
            sdtune::io::DType::F16);  // kept as stored

  r = run("convert --model " + dir.file("m.safetensors") + " --config " + data_path("tiny-sd1/pipeline") + " --output " + dir.file("folder"));
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  r = run("convert --model " + dir.file("m.safetensors") + " --config " + data_path("tiny-sd1/pipeline") + " --variant fp16 --output " + dir.file("f2"));
  EXPECT_NE(r.output.find("error: --variant"), std::string::npos) << r.output;
  // diffusers' fp16 variant files of a folder are read with --variant.
  r = run("convert --model " + dir.file("folder") + " --variant fp16 --output " + dir.file("f4"));
  EXPECT_NE(r.output.find("no fp16 variant safetensors weights"), std::string::npos) << r.output;
  std::filesystem::rename(dir.file("folder/unet/diffusion_pytorch_model.safetensors"), dir.file("folder/unet/diffusion_pytorch_model.fp16.safetensors"));
  std::filesystem::rename(dir.file("folder/vae/diffusion_pytorch_model.safetensors"), dir.file("folder/vae/diffusion_pytorch_model.fp16.safetensors"));
  std::filesystem::rename(dir.file("folder/text_encoder/model.safetensors"), dir.file("folder/text_encoder/model.fp16.safetensors"));
  r = run("convert --model " + dir.file("folder") + " --variant fp16 --output " + dir.file("f4.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(sdtune::io::SafetensorsFile(dir.file("f4.safetensors")).tensors().size(), file.tensors().size());
  r = run("convert --model " + data_path("tiny-sd1/pipeline") + " --config " + data_path("tiny-sd1/pipeline") + " --output " + dir.file("f3"));
  EXPECT_NE(r.output.find("error: --config"), std::string::npos) << r.output;
  // A --config folder whose scheduler names no class: the file is named, nothing is written.
  std::filesystem::copy(data_path("tiny-sd1/pipeline"), dir.file("odd_config"), std::filesystem::copy_options::recursive);
  std::ofstream(dir.file("odd_config/scheduler/scheduler_config.json"), std::ios::trunc) << R"({"_class_name": 5})";
  r = run("convert --model " + dir.file("m.safetensors") + " --config " + dir.file("odd_config") + " --output " + dir.file("f5"));
  EXPECT_NE(r.output.find("error: " + dir.file("odd_config/scheduler/scheduler_config.json") + ": config key \"_class_name\" must be a string"),
            std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("f5")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("f2")));
}

TEST(CliModels, FusedSingleFileAndTrainingOnOne) {
  sdtune::test::TempDir dir, data;
  const std::string model = single_file("tiny-sd1.safetensors"), config = " --config " + data_path("tiny-sd1/pipeline");
  auto r = run("lora fuse --model " + model + config + " --lora " + data_path("tiny-sd1/lora") + ":0.7 --output " + dir.file("fused.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The fused file generates what the folder does with the LoRA applied.
  const std::string request = " --prompt 'photo of (lora-misato-token), smiling' --num_inference_steps 3 --width 16 --height 16 --seed 7";
  r = run("generate --model " + dir.file("fused.safetensors") + config + request + " --output " + dir.file("a.png") + " --save_latents " + dir.file("a.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run("generate --model " + data_path("tiny-sd1/pipeline") + " --lora " + data_path("tiny-sd1/lora") + ":0.7" + request + " --output " +
          dir.file("b.png") + " --save_latents " + dir.file("b.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(relative_difference(floats_of(dir.file("a.safetensors"), "latents"), floats_of(dir.file("b.safetensors"), "latents")), 1e-5);
  r = run("lora fuse --model " + model + config + " --lora " + data_path("tiny-sd1/lora") + " --output " + dir.file("fused_folder"));
  EXPECT_NE(r.output.find("ending in .safetensors"), std::string::npos) << r.output;

  // One training step from the single file equals one from the folder (same seed, same weights).
  sdtune::test::make_dataset(data, 2);
  const std::string train = " --train_data_dir=" + data.path.string() + " --caption_column=text --resolution=16 --max_train_steps=1 --seed=3";
  r = run("train --pretrained_model_name_or_path=" + model + config + train + " --output_dir=" + dir.file("from_file"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("note: " + model + ": single-file checkpoint"), std::string::npos) << r.output;
  r = run("train --pretrained_model_name_or_path=" + data_path("tiny-sd1/pipeline") + train + " --output_dir=" + dir.file("from_folder"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  sdtune::io::SafetensorsFile a(dir.file("from_file/pytorch_lora_weights.safetensors")), b(dir.file("from_folder/pytorch_lora_weights.safetensors"));
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& entry : b.tensors())
    EXPECT_EQ(floats_of(a.path(), entry.name), floats_of(b.path(), entry.name)) << entry.name;
}

#if SDTUNE_TEST_FAKE_HUB
TEST(CliModels, HubIdIsDownloadedOnceResumedAfterAFullDiskAndThenOffline) {
  sdtune::test::FakeHub hub;
  hub.add("org/tiny-sd2", sdtune::test::FakeHub::Repo("89abcdef0123456789abcdef0123456789abcdef",
                                                      sdtune::test::FakeHub::files_of(data_path("tiny-sd2/pipeline"))));
  sdtune::test::TempDir home, out;
  const std::string env = "HF_ENDPOINT=" + hub.endpoint() + " HF_HOME=" + home.path.string() + " HF_HUB_CACHE= HF_HUB_OFFLINE= HF_TOKEN= ";
  const std::string generate = "generate --model org/tiny-sd2" + kSd2Request + " --save_latents " + out.file("latents.safetensors") +
                               " --output " + out.file("a.png") + " --overwrite";
  // The disk fills after 100 KB of the cache: one line, the partial blob kept.
  auto r = sdtune::test::run_shell(env + "LD_PRELOAD=" + std::string(SDTUNE_ENOSPC_WRAPPER) + " SDTUNE_TEST_ENOSPC_DIR=" +
                                   home.path.string() + " SDTUNE_TEST_ENOSPC_BYTES=100000 " + SDTUNE_BINARY " " + generate + " 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("No space left on device (what was downloaded is kept and the next run resumes it)"), std::string::npos) << r.output;
  sdtune::test::expect_one_clean_error_line(r.output);
  hub.clear_requests();
  r = sdtune::test::run_shell(env + SDTUNE_BINARY " " + generate + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int ranges = 0;
  for (const auto& request : hub.requests()) ranges += request.find("Range=bytes=") != std::string::npos;
  EXPECT_EQ(ranges, 1);
  sdtune::io::SafetensorsFile refs(data_path("tiny-sd2/ref/pipeline_ddim.safetensors"));
  const auto& entry = refs.at("latents_seed");
  const float* ref = reinterpret_cast<const float*>(refs.data(entry));
  EXPECT_LT(relative_difference(floats_of(out.file("latents.safetensors"), "latents"), std::vector<float>(ref, ref + entry.numel())), 1e-3);

  // From the cache now, with no server asked, and --offline for an id the cache lacks.
  hub.clear_requests();
  r = sdtune::test::run_shell(env + SDTUNE_BINARY " " + generate + " --offline 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(hub.requests().empty());
  r = sdtune::test::run_shell(env + SDTUNE_BINARY " tokenize --model org/other --prompt x --offline 2>&1");
  EXPECT_NE(r.output.find("offline"), std::string::npos) << r.output;
  EXPECT_TRUE(hub.requests().empty());
}

#endif

}  // namespace
