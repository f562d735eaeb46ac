// End-to-end checks of the sdtune binary: exit codes, messages and outputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "test_util.h"

using sdtune::test::data_path;

namespace {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string command = std::string(SDTUNE_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

TEST(Cli, HelpListsSubcommandsAndFlags) {
  const auto top = run("--help");
  EXPECT_EQ(top.exit_code, 0);
  for (const char* sub : {"tokenize", "encode-prompt", "inspect"}) EXPECT_NE(top.output.find(sub), std::string::npos) << sub;
  const auto tokenize = run("tokenize --help");
  EXPECT_EQ(tokenize.exit_code, 0);
  for (const char* flag : {"--model", "--prompt", "--prompt_weighting", "--truncate_prompts", "--json", "--revision", "--variant"})
    EXPECT_NE(tokenize.output.find(flag), std::string::npos) << flag;
}

TEST(Cli, TokenizeJsonGivesTheTextEncoderIds) {
  const auto r = run("tokenize --model " + data_path("tiny-sd2/pipeline") + " --json --prompt 'photo of (lora-misato-token), smiling'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = sdtune::io::parse_json_text(r.output, "stdout");
  const auto expected = sdtune::test::read_int64_rows(data_path("tiny-sd2/ref/tokenizer_ids.safetensors"), "input_ids");
  EXPECT_EQ(j["input_ids"].get<std::vector<int64_t>>(), expected[0]);
  EXPECT_EQ(j["tokens"].size(), 77u);
  EXPECT_EQ(j["tokens"][3], "(</w>");  // the trigger token's bracket survives as text
  EXPECT_EQ(j["weights"][3], 1.0);
}

TEST(Cli, TokenizeA1111ShowsWeightsAndEscapingNote) {
  const auto r = run("tokenize --model " + data_path("tiny-sd1/pipeline") + " --prompt_weighting a1111 --prompt '(castle:1.3)'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1.300"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\\("), std::string::npos) << r.output;
}

TEST(Cli, TruncationIsReported) {
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "castle hill ";
  const auto r = run("tokenize --model " + data_path("tiny-sd1/pipeline") + " --truncate_prompts --prompt '" + prompt + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("was cut"), std::string::npos) << r.output;
}

TEST(Cli, EncodePromptWritesPromptEmbeds) {
  sdtune::test::TempDir dir;
  const std::string out = dir.file("e.safetensors");
  const auto r = run("encode-prompt --model " + data_path("tiny-sd1/pipeline") + " --prompt 'blurry, low quality' --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  sdtune::io::SafetensorsFile file(out);
  const auto& e = file.at("prompt_embeds");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{1, 77, 32}));
  // Row 5 of the reference is this prompt.
  sdtune::io::SafetensorsFile ref(data_path("tiny-sd1/ref/text_encoder.safetensors"));
  const auto& expected = ref.at("last_hidden_state");
  const float* got = reinterpret_cast<const float*>(file.data(e));
  const float* want = reinterpret_cast<const float*>(ref.data(expected)) + 5 * 77 * 32;
  double diff = 0, norm = 0;
  for (int i = 0; i < 77 * 32; ++i) diff += (got[i] - want[i]) * (got[i] - want[i]), norm += want[i] * want[i];
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

struct BadInput {
  const char* name;
  std::string args;
  const char* expected;
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInput, FailsWithOneClearMessage) {
  const auto r = run(GetParam().args);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.output;
  EXPECT_NE(r.output.find(GetParam().expected), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CliBadInput,
    ::testing::Values(
        BadInput{"unknown_weighting", "tokenize --model " + data_path("tiny-sd1/pipeline") + " --prompt x --prompt_weighting fancy", "--prompt_weighting"},
        BadInput{"negative_clip_skip", "encode-prompt --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/x.safetensors --clip_skip -1", "--clip_skip"},
        BadInput{"clip_skip_too_deep", "encode-prompt --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/sdtune-never.safetensors --clip_skip 3", "--clip_skip"},
        BadInput{"missing_model", "tokenize --model no-org/no-model --prompt x", "not in the Hugging Face cache"},
        BadInput{"unknown_subcommand", "paint --prompt x", "unknown subcommand \"paint\""},
        BadInput{"hostile_file", "inspect " + data_path("tiny-sd1/tokenizer_does_not_exist.safetensors"), "cannot open"},
        BadInput{"not_safetensors", "inspect " + data_path("tiny-sd1/pipeline/tokenizer/vocab.json"), "vocab.json"},
        BadInput{"invalid_utf8", "tokenize --model " + data_path("tiny-sd1/pipeline") + " --prompt \"$(printf '\\377')\"", "UTF-8"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Cli, InspectListsTensorsAndMetadata) {
  const auto r = run("inspect " + data_path("tiny-sd2/lora_kohya/lora_kohya_alpha8.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha  F32 []"),
            std::string::npos) << r.output;
}

}  // namespace

#include "io/png.h"

namespace {

// The README's generate example on the tiny SD2 model: same seed, same picture as diffusers.
TEST(CliGenerate, SeededEulerAncestralImageEqualsDiffusers) {
  sdtune::test::TempDir dir;
  const std::string out = dir.file("out.png");
  const auto r = run("generate --model " + data_path("tiny-sd2/pipeline") +
                     " --scheduler euler_a --prompt 'photo of (lora-misato-token), smiling' --negative_prompt 'blurry, low quality'"
                     " --num_inference_steps 10 --guidance_scale 6 --width 24 --height 32 --seed 1234 --output " + out +
                     " --save_latents " + dir.file("latents.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Sampling: 100%"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("peak memory"), std::string::npos) << r.output;
  const auto image = sdtune::io::read_png(out);
  ASSERT_EQ(image.width, 24);
  ASSERT_EQ(image.height, 32);
  sdtune::io::SafetensorsFile ref(data_path("tiny-sd2/ref/pipeline_euler_a.safetensors"));
  const float* expected = reinterpret_cast<const float*>(ref.data(ref.at("image_seed")));  // [1, 3, 32, 24]
  int worst = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 24; ++x) {
        const int ours = image.pixels[size_t((y * 24 + x) * 3 + c)];
        worst = std::max(worst, int(std::ceil(std::fabs(ours - expected[(c * 32 + y) * 24 + x] * 255.0f))));
      }
  EXPECT_LE(worst, 2);
  const auto text = sdtune::io::read_png_text(out);
  EXPECT_NE(text.at("parameters").find("Steps: 10, Sampler: Euler a, CFG scale: 6, Seed: 1234, Size: 24x32"), std::string::npos)
      << text.at("parameters");
  const auto info = run("info " + out);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_NE(info.output.find("Negative prompt: blurry, low quality"), std::string::npos) << info.output;
  sdtune::io::SafetensorsFile latents(dir.file("latents.safetensors"));
  EXPECT_EQ(latents.at("latents").shape, (std::vector<int64_t>{1, 4, 8, 6}));
}

TEST(CliGenerate, SeveralImagesAreNumberedAndNeverOverwritten) {
  sdtune::test::TempDir dir;
  const std::string base = "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt castle --num_inference_steps 2 --num_images 2 --output " + dir.file("img.png");
  ASSERT_EQ(run(base).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir.file("img-1.png")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("img-2.png")));
  const auto again = run(base);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;
  EXPECT_EQ(run(base + " --overwrite").exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Generate, CliBadInput,
    ::testing::Values(
        BadInput{"bad_width", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --width 30 --output /tmp/sdtune-never.png", "--width"},
        BadInput{"fp16_on_cpu", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --dtype fp16 --output /tmp/sdtune-never.png", "fp16"},
        BadInput{"unknown_scheduler", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --scheduler ddpm --output /tmp/sdtune-never.png", "--scheduler"},
        BadInput{"not_png", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/sdtune-never.jpg", "must end in .png"},
        BadInput{"init_latents_shape", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/sdtune-never.png --init_latents " + data_path("tiny-sd2/ref/pipeline_ddim.safetensors"), "no tensor named \"latents\""},
        BadInput{"eta_without_ddim", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --scheduler euler --eta 0.5 --output /tmp/sdtune-never.png", "--eta"},
        BadInput{"karras_with_ddim", "generate --model " + data_path("tiny-sd1/pipeline") + " --prompt x --scheduler ddim --karras --output /tmp/sdtune-never.png", "--karras"},
        BadInput{"info_not_png", "info " + data_path("tiny-sd1/pipeline/model_index.json"), "not a PNG"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace

namespace {

// Relative error of a float32 tensor in two safetensors files.
double relative_difference(const std::string& a_path, const std::string& a_name, const std::string& b_path, const std::string& b_name) {
  sdtune::io::SafetensorsFile a(a_path), b(b_path);
  const auto& ea = a.at(a_name);
  const auto& eb = b.at(b_name);
  EXPECT_EQ(ea.shape, eb.shape);
  const float* x = reinterpret_cast<const float*>(a.data(ea));
  const float* y = reinterpret_cast<const float*>(b.data(eb));
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < eb.numel(); ++i) diff += (x[i] - y[i]) * (x[i] - y[i]), norm += y[i] * y[i];
  return std::sqrt(diff / norm);
}

TEST(CliGenerate, LoraFlagAndPromptTagEqualDiffusers) {
  sdtune::test::TempDir dir;
  const std::string common = "generate --model " + data_path("tiny-sd2/pipeline") +
                             " --negative_prompt 'blurry, low quality' --num_inference_steps 10 --guidance_scale 6 --width 24 --height 32"
                             " --seed 1234 --scheduler euler --output " + dir.file("x.png") + " --overwrite";
  const std::string prompt = "photo of (lora-misato-token), smiling";
  auto r = run(common + " --prompt '" + prompt + "' --lora " + data_path("tiny-sd2/lora") + " --save_latents " + dir.file("a.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("32 UNet and 0 text-encoder modules"), std::string::npos) << r.output;
  const std::string ref = data_path("tiny-sd2/ref/lora_pipeline.safetensors");
  EXPECT_LT(relative_difference(dir.file("a.safetensors"), "latents", ref, "latents_seed_euler"), 1e-3);

  // Explicit start latents and a kohya alpha-8 file at weight 0.25 = diffusers' scale 0.5.
  sdtune::io::SafetensorsFile refs(ref);
  const auto& init = refs.at("init_latents");
  sdtune::io::write_safetensors(dir.file("init.safetensors"), {{"latents", sdtune::io::DType::F32, init.shape, refs.data(init), init.nbytes()}});
  r = run(common + " --prompt '" + prompt + " <lora:lora_kohya_alpha8:0.25>' --lora_dir " + data_path("tiny-sd2/lora_kohya") +
          " --init_latents " + dir.file("init.safetensors") + " --save_latents " + dir.file("b.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(relative_difference(dir.file("b.safetensors"), "latents", ref, "latents_explicit_euler_scale0.5"), 1e-3);
  EXPECT_NE(sdtune::io::read_png_text(dir.file("x.png")).at("parameters").find("Lora: \"lora_kohya_alpha8:0.25\""), std::string::npos);

  r = run(common + " --prompt x --lora " + data_path("tiny-sd1/lora"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("another base model"), std::string::npos) << r.output;
  r = run(common + " --prompt 'x <lora:foo>'");
  EXPECT_NE(r.output.find("--lora_dir"), std::string::npos) << r.output;
}

}  // namespace

namespace {

TEST(CliLora, InfoConvertAndFuse) {
  sdtune::test::TempDir dir;
  auto r = run("lora info " + data_path("tiny-sd2/lora_kohya/lora_kohya_alpha8.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"format: kohya", "modules: unet 32", "rank: 4", "alpha: 8", "targets: to_k, to_out.0, to_q, to_v", "parameters: "})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  r = run("lora convert " + data_path("tiny-sd2/lora") + " " + dir.file("k.safetensors") + " --format kohya");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(sdtune::io::SafetensorsFile(dir.file("k.safetensors"))
                  .contains("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0.alpha"));
  r = run("lora fuse --model " + data_path("tiny-sd2/pipeline") + " --lora " + dir.file("k.safetensors") + ":0.5 --output " + dir.file("fused"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("fused/unet/diffusion_pytorch_model.safetensors")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("fused/tokenizer/vocab.json")));
  r = run("lora convert " + data_path("tiny-sd2/lora") + " " + dir.file("x.safetensors") + " --format comfy");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
