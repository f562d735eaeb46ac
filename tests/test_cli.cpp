// End-to-end checks of the sdtune binary: exit codes, messages and outputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "io/json_file.h"
#include "io/safetensors.h"
#include "cli_run.h"
#include "synthetic_dataset.h"
#include "test_util.h"

using sdtune::test::data_path;
using sdtune::test::run;
using sdtune::test::run_shell;

namespace {

TEST(Cli, HelpListsSubcommandsAndFlags) {
  const auto top = run("--help");
  EXPECT_EQ(top.exit_code, 0);
  for (const char* sub : {"tokenize", "encode-prompt", "inspect"}) EXPECT_NE(top.output.find(sub), std::string::npos) << sub;
  const auto tokenize = run("tokenize --help");
  EXPECT_EQ(tokenize.exit_code, 0);
  for (const char* flag : {"--model", "--prompt", "--prompt_weighting", "--truncate_prompts", "--json", "--revision", "--variant"})
    EXPECT_NE(tokenize.output.find(flag), std::string::npos) << flag;
}

// The binary reports the LibTorch it was built against, whether CUDA is in it, and whether our oneDNN
// kernels are: only the Debian build has them (a 2.x wheel carries its own oneDNN; see CMakeLists.txt).
TEST(Cli, VersionNamesLibTorchCudaAndOneDnnChoice) {
  const auto r = run("--version");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("sdtune ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("LibTorch " SDTUNE_EXPECTED_TORCH_VERSION ","), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(", " SDTUNE_EXPECTED_CUDA), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("oneDNN kernels " SDTUNE_EXPECTED_ONEDNN), std::string::npos) << r.output;
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
  sdtune::test::expect_one_clean_error_line(r.output);
}

INSTANTIATE_TEST_SUITE_P(
    Table, CliBadInput,
    ::testing::Values(
        BadInput{"unknown_weighting", "tokenize --model " + data_path("tiny-sd1/pipeline") + " --prompt x --prompt_weighting fancy", "--prompt_weighting"},
        BadInput{"negative_clip_skip", "encode-prompt --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/x.safetensors --clip_skip -1", "--clip_skip"},
        BadInput{"clip_skip_too_deep", "encode-prompt --model " + data_path("tiny-sd1/pipeline") + " --prompt x --output /tmp/sdtune-never.safetensors --clip_skip 3", "--clip_skip"},
        BadInput{"missing_model", "tokenize --model no-org/no-model --prompt x --offline", "not in the Hugging Face cache"},
        BadInput{"unknown_subcommand", "paint --prompt x", "unknown subcommand \"paint\""},
        BadInput{"hostile_file", "inspect " + data_path("tiny-sd1/tokenizer_does_not_exist.safetensors"), "file not found"},
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
  // A --lora LoRA goes into the prompt as the tag A1111 reads (a folder LoRA by the folder's name), with
  // its addnet hash (sha256 of the tensor bytes after the header, computed by Python's hashlib).
  auto parameters = sdtune::io::read_png_text(dir.file("x.png")).at("parameters");
  EXPECT_EQ(parameters.rfind(prompt + " <lora:lora:1>\nNegative prompt: blurry, low quality\n", 0), 0u) << parameters;
  EXPECT_NE(parameters.find(", Lora hashes: \"lora: 80cf776d2806\""), std::string::npos) << parameters;
  EXPECT_EQ(parameters.find("Model hash"), std::string::npos) << parameters;  // a diffusers folder has none A1111 knows

  // Explicit start latents and a kohya alpha-8 file at weight 0.25 = diffusers' scale 0.5.
  sdtune::io::SafetensorsFile refs(ref);
  const auto& init = refs.at("init_latents");
  sdtune::io::write_safetensors(dir.file("init.safetensors"), {{"latents", sdtune::io::DType::F32, init.shape, refs.data(init), init.nbytes()}});
  r = run(common + " --prompt '" + prompt + " <lora:lora_kohya_alpha8:0.25>' --lora_dir " + data_path("tiny-sd2/lora_kohya") +
          " --init_latents " + dir.file("init.safetensors") + " --save_latents " + dir.file("b.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(relative_difference(dir.file("b.safetensors"), "latents", ref, "latents_explicit_euler_scale0.5"), 1e-3);
  parameters = sdtune::io::read_png_text(dir.file("x.png")).at("parameters");
  EXPECT_EQ(parameters.rfind(prompt + " <lora:lora_kohya_alpha8:0.25>\n", 0), 0u) << parameters;
  EXPECT_NE(parameters.find(", Lora hashes: \"lora_kohya_alpha8: 433a7fd89847\""), std::string::npos) << parameters;

  r = run(common + " --prompt x --lora " + data_path("tiny-sd1/lora"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("another base model"), std::string::npos) << r.output;
  r = run(common + " --prompt 'x <lora:foo>'");
  EXPECT_NE(r.output.find("--lora_dir"), std::string::npos) << r.output;
}

}  // namespace

namespace {

TEST(Cli, EmbeddingsEncodeAsDiffusersAndShowInTokens) {
  sdtune::test::TempDir dir;
  // --embedding FILE:TOKEN and a folder whose file names are tokens, in any case.
  const std::string flags = " --embedding '" + data_path("embeddings/cat-toy/learned_embeds.safetensors") + ":<cat-toy>'" +
                            " --embeddings_dir " + data_path("embeddings");
  auto r = run("tokenize --model " + data_path("tiny-sd2/pipeline") + flags + " --json --prompt 'in easynegative style'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = sdtune::io::parse_json_text(r.output.substr(r.output.find('{')), "stdout");
  EXPECT_EQ(j["tokens"][2], "EasyNegative");
  EXPECT_EQ(j["tokens"][4], "EasyNegative_2");
  r = run("encode-prompt --model " + data_path("tiny-sd2/pipeline") + flags + " --prompt 'photo of <cat-toy> in EasyNegative style' --output " +
          dir.file("e.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("embedding EasyNegative (3 vectors): " + data_path("embeddings") + "/EasyNegative.safetensors"), std::string::npos) << r.output;
  EXPECT_LT(relative_difference(dir.file("e.safetensors"), "prompt_embeds", data_path("embeddings/references.safetensors"), "tiny-sd2.prompt_embeds_0"), 1e-4);
  r = run("tokenize --model " + data_path("tiny-sd2/pipeline") + " --embedding " + data_path("tiny-sd1/pipeline/unet/diffusion_pytorch_model.safetensors") + " --prompt x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("is not a textual-inversion embedding"), std::string::npos) << r.output;
}

TEST(CliGenerate, SingleFileModelAndEmbeddingHashesAsA1111) {
  sdtune::test::TempDir dir;
  const auto r = run("generate --model " + data_path("single_file/tiny-sd1.safetensors") + " --config " + data_path("tiny-sd1/pipeline") +
                     " --embeddings_dir " + data_path("embeddings") + " --prompt 'a castle' --negative_prompt 'EasyNegative'"
                     " --num_inference_steps 2 --width 16 --height 16 --seed 1 --output " + dir.file("x.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto parameters = sdtune::io::read_png_text(dir.file("x.png")).at("parameters");
  // sha256 of the whole file (10 digits) and of the embedding's (12), as Python's hashlib gives them.
  EXPECT_NE(parameters.find(", Model hash: 2be058a303, Model: tiny-sd1,"), std::string::npos) << parameters;
  EXPECT_NE(parameters.find(", TI hashes: \"EasyNegative: 848061e8749b\""), std::string::npos) << parameters;
}

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

  // LyCORIS: the type of every module; kohya keys keep them (scales folded in), diffusers keys cannot.
  const std::string lycoris = data_path("lycoris/lycoris.safetensors");
  r = run("lora info " + lycoris);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"types: locon-cp 1 loha 1 loha-cp 1 lokr 1 lokr-cp 1 lokr-full 1 lora+dora 1",
                               "module lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q: loha, rank 2, scale 0.5",
                               "module lora_unet_up_blocks_0_resnets_0_conv1: lokr-cp, rank 1, scale 1"})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  r = run("lora convert " + lycoris + " " + dir.file("l.safetensors") + " --format kohya");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run("lora info " + dir.file("l.safetensors"));
  EXPECT_NE(r.output.find("attn1_to_q: loha, rank 2, scale 1\n"), std::string::npos) << r.output;
  r = run("lora convert " + lycoris + " " + dir.file("d.safetensors") + " --format diffusers");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("only kohya keys hold (--format kohya)"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.safetensors")));
}

TEST(CliTrain, TheChaptersCommandTrainsAndCheckpoints) {
  sdtune::test::TempDir data, out;
  sdtune::test::make_dataset(data, 4);
  const auto r = run("train --pretrained_model_name_or_path=" + data_path("tiny-sd2/pipeline") + " --train_data_dir=" + data.path.string() +
                     " --caption_column=text --resolution=32 --random_flip --train_batch_size=1 --num_train_epochs=2"
                     " --checkpointing_steps=5 --learning_rate=1e-04 --lr_scheduler=constant --lr_warmup_steps=0 --seed=42 --output_dir=" +
                     out.path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"***** Running training *****", "Num examples = 4", "Total optimization steps = 8", "Steps: 100%",
                               "step_loss=", "Saved state to", "checkpoint-5"})
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  for (const char* file : {"pytorch_lora_weights.safetensors", "checkpoint-5/state.json", "checkpoint-5/optimizer.pt", "logs/loss.svg"})
    EXPECT_TRUE(std::filesystem::exists(out.file(file))) << file;
}

TEST(CliTrain, CtrlCFinishesTheStepSavesAndResumes) {
  sdtune::test::TempDir data, out;
  sdtune::test::make_dataset(data, 4);
  const std::string train = std::string(SDTUNE_BINARY) + " train --model " + data_path("tiny-sd1/pipeline") + " --train_data_dir " +
                            data.path.string() + " --resolution 32 --seed 1 --checkpointing_steps 0 --output_dir " + out.path.string();
  // Interrupt once the first step is logged; the run must end on its own with a checkpoint.
  const auto r = run_shell("bash -c '" + train + " --max_train_steps 100000 > " + out.file("run.txt") + " 2>&1 & pid=$!; " +
                           "while [ ! -s " + out.file("logs/train.jsonl") + " ] && kill -0 $pid; do sleep 0.05; done; kill -INT $pid; wait $pid; echo rc=$?'");
  EXPECT_NE(r.output.find("rc=130"), std::string::npos) << r.output;
  std::ifstream log(out.file("run.txt"));
  const std::string printed((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(printed.find("--resume_from_checkpoint latest"), std::string::npos) << printed;
  std::string checkpoint;
  for (const auto& entry : std::filesystem::directory_iterator(out.path))
    if (entry.path().filename().string().rfind("checkpoint-", 0) == 0) checkpoint = entry.path().filename().string();
  ASSERT_FALSE(checkpoint.empty()) << printed;
  const int64_t step = std::stoll(checkpoint.substr(11));
  const auto resumed = run(train.substr(std::string(SDTUNE_BINARY).size() + 1) + " --resume_from_checkpoint latest --max_train_steps " +
                           std::to_string(step + 2));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("Resuming from checkpoint"), std::string::npos) << resumed.output;
  EXPECT_TRUE(std::filesystem::exists(out.file("pytorch_lora_weights.safetensors")));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(CliPublish, TrainPublishCheckGeneratePushAndCloneBack) {
  sdtune::test::TempDir data, out, work;
  sdtune::test::make_dataset(data, 4);
  const std::string model = data_path("tiny-sd2/pipeline");
  auto r = run("train --model " + model + " --train_data_dir " + data.path.string() + " --resolution 32 --max_train_steps 2" +
               " --checkpointing_steps 1 --validation_prompt '(lora-misato-token) picture' --num_validation_images 1" +
               " --validation_inference_steps 2 --num_train_epochs 1 --output_dir " + out.path.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string repo = work.file("misato-lora"), bare = work.file("remote.git");
  ASSERT_EQ(run_shell("git init -q --bare " + bare).exit_code, 0);
  // Trained on a local folder: the Hub needs a model id for the card, so --base_model must say it.
  const std::string publish = "publish " + out.path.string() + " --repo_dir " + repo + " --kohya --repo_id me/misato-lora";
  r = run(publish + " --push file://" + bare);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("error: --base_model: is needed: the LoRA was trained on \"" + model + "\", a local path"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(repo + "/pytorch_lora_weights.safetensors"));
  r = run(publish + " --base_model stabilityai/stable-diffusion-2 --push file://" + bare);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(with git-lfs)"), std::string::npos) << r.output;
  for (const char* file : {"pytorch_lora_weights.safetensors", "misato-lora.safetensors", "README.md", ".gitattributes", "samples/step-2-0.png"})
    EXPECT_TRUE(std::filesystem::exists(repo + "/" + file)) << file << "\n" << r.output;
  for (const char* file : {"optimizer.pt", "state.json", "random_states.safetensors", "checkpoint-1"})
    EXPECT_FALSE(std::filesystem::exists(repo + "/" + file)) << file;

  // The card's front matter is YAML the Hub understands.
  const std::string readme = read_file(repo + "/README.md");
  const size_t end = readme.find("\n---\n", 4);
  ASSERT_EQ(readme.rfind("---\n", 0), 0u);
  ASSERT_NE(end, std::string::npos);
  const YAML::Node card = YAML::Load(readme.substr(4, end - 4));
  EXPECT_EQ(card["base_model"].as<std::string>(), "stabilityai/stable-diffusion-2");
  EXPECT_EQ(card["library_name"].as<std::string>(), "diffusers");
  EXPECT_EQ(card["license"].as<std::string>(), "openrail++");
  EXPECT_EQ(card["instance_prompt"].as<std::string>(), "(lora-misato-token)");
  std::vector<std::string> tags;
  for (const auto& t : card["tags"]) tags.push_back(t.as<std::string>());
  for (const char* tag : {"lora", "text-to-image", "stable-diffusion"})
    EXPECT_NE(std::find(tags.begin(), tags.end(), tag), tags.end()) << tag;
  EXPECT_EQ(card["widget"][0]["text"].as<std::string>(), "(lora-misato-token) picture");
  EXPECT_EQ(card["widget"][0]["output"]["url"].as<std::string>(), "samples/step-2-0.png");
  EXPECT_NE(readme.find("pipe.load_lora_weights(\"me/misato-lora\")"), std::string::npos);
  EXPECT_NE(readme.find("| Steps | 2 |"), std::string::npos) << readme;

  EXPECT_EQ(run("publish --check " + repo).exit_code, 0);
  // A checkpoint publishes with its own step and only samples made by then (none: validation ran at step 2).
  r = run("publish " + out.path.string() + " --repo_dir " + work.file("at-step-1") + " --checkpoint 1 --base_model stabilityai/stable-diffusion-2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(work.file("at-step-1/README.md")).find("| Steps | 1 |"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(work.file("at-step-1/samples")));
  r = run("generate --model " + model + " --lora " + repo + " --prompt '(lora-misato-token) picture' --num_inference_steps 2 --width 32 --height 32" +
          " --seed 1 --output " + work.file("image.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // Weights and images travel as LFS objects (the remote's git holds pointers) and come back byte for byte.
  // The clone gets git-lfs's filters on its command line: the test leaves the user's git config alone.
  const std::string lfs = "git -c filter.lfs.process='git-lfs filter-process' -c filter.lfs.required=true "
                          "-c filter.lfs.smudge='git-lfs smudge -- %f' -c filter.lfs.clean='git-lfs clean -- %f' ";
  for (const char* file : {"pytorch_lora_weights.safetensors", "samples/step-2-0.png"}) {
    const auto stored = run_shell("git --git-dir " + bare + " show main:" + file + " 2>&1");
    EXPECT_EQ(stored.output.rfind("version https://git-lfs.github.com/spec/v1\noid sha256:", 0), 0u) << file << ": " << stored.output;
  }
  ASSERT_EQ(run_shell(lfs + "clone -q -b main file://" + bare + " " + work.file("clone") + " 2>&1").exit_code, 0);
  const auto listed = run_shell("cd " + work.file("clone") + " && git lfs ls-files -n 2>&1").output;
  for (const char* file : {"pytorch_lora_weights.safetensors", "misato-lora.safetensors", "samples/step-2-0.png"})
    EXPECT_NE(listed.find(file), std::string::npos) << file << ": " << listed;
  for (const char* file : {"pytorch_lora_weights.safetensors", "misato-lora.safetensors", "README.md", ".gitattributes", "samples/step-2-0.png"})
    EXPECT_TRUE(read_file(work.file(std::string("clone/") + file)) == read_file(repo + "/" + file)) << file;

  // A broken card fails the check; a folder holding a base model is refused.
  std::ofstream(repo + "/README.md", std::ios::trunc) << "---\nlicense: [unclosed\n---\n";
  r = run("publish --check " + repo);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("does not parse"), std::string::npos) << r.output;
  std::filesystem::create_directories(work.file("other"));
  std::ofstream(work.file("other/model_index.json")) << "{}";
  r = run("publish " + out.path.string() + " --repo_dir " + work.file("other") + " --base_model stabilityai/stable-diffusion-2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("model_index.json"), std::string::npos) << r.output;
}

}  // namespace
