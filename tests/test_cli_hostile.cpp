// The sdtune binary against hostile files and values (issue 15's families): one clean error line,
// a non-zero exit, no crash or hang, bounded memory, inputs untouched.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <png.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>

#include "cli_run.h"
#include "io/json_file.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "synthetic_dataset.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using sdtune::test::data_path;
using sdtune::test::run;
using sdtune::test::TempDir;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A copy of a tiny pipeline whose `component`/config.json gets `patch` merged in.
std::string patched_model(const TempDir& dir, const std::string& component, const sdtune::io::Json& patch) {
  const fs::path model = dir.path / "model";
  fs::copy(data_path("tiny-sd1/pipeline"), model, fs::copy_options::recursive);
  const std::string config = (model / component / (component == "scheduler" ? "scheduler_config.json" : "config.json")).string();
  sdtune::io::Json j = sdtune::io::read_json_file(config);
  j.merge_patch(patch);
  std::ofstream(config) << j.dump();
  return model.string();
}

// Rewrites a safetensors file with `change` applied to the bytes of `tensor`.
void rewrite_tensor(const std::string& path, const std::string& tensor, const std::function<void(std::vector<uint8_t>&)>& change) {
  std::vector<std::vector<uint8_t>> data;
  std::vector<sdtune::io::TensorBytes> items;
  std::map<std::string, std::string> metadata;
  {
    const sdtune::io::SafetensorsFile file(path);
    metadata = file.metadata();
    for (const auto& e : file.tensors()) {
      data.emplace_back(file.data(e), file.data(e) + e.nbytes());
      if (e.name == tensor) change(data.back());
    }
    for (size_t i = 0; i < file.tensors().size(); ++i) {
      const auto& e = file.tensors()[i];
      items.push_back({e.name, e.dtype, e.shape, data[i].data(), e.nbytes()});
    }
  }
  fs::remove(path);  // a new file: this process just read the old one
  sdtune::io::write_safetensors(path, items, metadata);
}

// The first (or every) element of an f32 `tensor` set to `value`.
void poison_tensor(const std::string& path, const std::string& tensor, float value, bool every = false) {
  rewrite_tensor(path, tensor, [&](std::vector<uint8_t>& bytes) {
    for (size_t at = 0; at < (every ? bytes.size() : sizeof value); at += sizeof value) std::memcpy(bytes.data() + at, &value, sizeof value);
  });
}

void expect_refused(const sdtune::test::Result& r, const std::string& message) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.output;
  EXPECT_NE(r.output.find("error: " + message), std::string::npos) << r.output;
  sdtune::test::expect_one_clean_error_line(r.output);
}

std::string generate(const std::string& model, const TempDir& out, const std::string& flags) {
  return "generate --model " + model + " --prompt castle --num_inference_steps 2 --output " + out.file("out.png") + " " + flags;
}

TEST(HostileConfigs, SizesAreCheckedBeforeAnythingIsAllocated) {
  struct Case {
    std::string component;
    sdtune::io::Json patch;
    std::string message;
  };
  const std::vector<Case> cases{
      {"unet", {{"norm_num_groups", 0}}, "config key \"norm_num_groups\" must be between 1 and 16384"},
      {"unet", {{"layers_per_block", 1000000}}, "config key \"layers_per_block\" entry 0 must be between 1 and 64, got 1000000"},
      {"unet", {{"block_out_channels", {2000000000, 64}}}, "config key \"block_out_channels\" entry 0 must be between 1 and 16384"},
      {"unet", {{"conv_in_kernel", 0}}, "config key \"conv_in_kernel\" must be an odd size from 1 to 15"},
      {"unet", {{"layers_per_block", 2.5}}, "config key \"layers_per_block\" must be an integer, got 2.5"},
      {"unet", {{"in_channels", -4}}, "config key \"in_channels\" must be between 1 and 64, got -4"},
      // In range, but far more than the weights hold: refused from the weight file's header.
      {"unet", {{"transformer_layers_per_block", 60}}, "describes a model with tensor \"down_blocks.0.attentions.1.transformer_blocks.59.attn2.to_k.weight\""},
      {"text_encoder", {{"num_hidden_layers", 200}}, "describes a model with tensor \"text_model.encoder.layers.199.mlp.fc1.weight\""},
      {"text_encoder", {{"vocab_size", 0}}, "config key \"vocab_size\" must be between 1 and 1048576, got 0"},
      {"vae", {{"layers_per_block", 50}}, "describes a model with tensor \"encoder.down_blocks.0.resnets.49.conv1.weight\""},
      {"vae", {{"scaling_factor", -1}}, "config key \"scaling_factor\" must be a positive number"},
      {"scheduler", {{"beta_end", 1.5}}, "config key \"beta_end\" must be in [0, 1), got 1.500000"},
      {"scheduler", {{"steps_offset", 100000}}, "steps_offset: the scheduler config's steps_offset 100000"},
  };
  for (const auto& c : cases) {
    TempDir dir, out;
    const std::string model = patched_model(dir, c.component, c.patch);
    const auto r = run(generate(model, out, ""));
    SCOPED_TRACE(c.patch.dump());
    expect_refused(r, "");
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out.file("out.png")));
  }
  EXPECT_LT(sdtune::test::peak_child_memory_mib(), 1024) << "a config made sdtune allocate its model";
}

TEST(HostileConfigs, PythonNaNInAConfigIsRefusedNotTakenAsDefault) {
  TempDir dir, out;
  const std::string model = patched_model(dir, "unet", sdtune::io::Json::object());
  std::string config = read_all(model + "/unet/config.json");
  config.replace(config.find("\"norm_eps\":"), std::string("\"norm_eps\":").size(), "\"norm_eps\": NaN, \"x\":");
  std::ofstream(model + "/unet/config.json") << config;
  expect_refused(run(generate(model, out, "")), model + "/unet/config.json: config key \"norm_eps\" must be a finite number, got NaN");
}

TEST(HostileNumbers, NonFiniteValuesAreRefusedUpFront) {
  TempDir out;
  const std::string model = data_path("tiny-sd1/pipeline");
  expect_refused(run(generate(model, out, "--guidance_scale nan")), "--guidance_scale: must be a finite number, got nan");
  expect_refused(run(generate(model, out, "--scheduler ddim --eta inf")), "--eta: must be a finite number, got inf");
  expect_refused(run(generate(model, out, "--guidance_rescale -nan")), "--guidance_rescale: must be a finite number, got -nan");
  expect_refused(run(generate(model, out, "--lora " + data_path("tiny-sd1/lora") + ":nan")), "--lora: weight nan of");
  expect_refused(run(generate(model, out, "--seed 18446744073709551616")), "--seed: must be an integer from 0 to 18446744073709551615");
  expect_refused(run(generate(model, out, "--seed -1")), "--seed: must be an integer from 0 to 18446744073709551615, got -1");
  expect_refused(run(generate(model, out, "--width -16")), "--width: Value -16 not in range 1 to 16384");
  expect_refused(run("generate --model " + model + " --prompt '<lora:x:inf>' --lora_dir " + out.path.string() + " --output " + out.file("o.png")),
                 "--prompt: LoRA tag <lora:x:inf> has a weight that is not a finite number");
  for (const char* flag : {"--learning_rate nan", "--learning_rate -1", "--adam_beta2 1", "--adam_epsilon 0", "--lora_alpha inf", "--max_grad_norm nan"}) {
    const auto r = run("train --model " + model + " --train_data_dir " + out.path.string() + " --output_dir " + out.file("o") + " " + flag);
    expect_refused(r, std::string(flag).substr(0, std::string(flag).find(' ')) + ": must be");
  }
  // A latents file or a LoRA holding NaN.
  const std::vector<float> latents(4 * 8 * 8, std::numeric_limits<float>::quiet_NaN());
  sdtune::io::write_safetensors(out.file("nan.safetensors"), {{"latents", sdtune::io::DType::F32, {1, 4, 8, 8}, latents.data(), 1024}});
  expect_refused(run(generate(model, out, "--init_latents " + out.file("nan.safetensors"))),
                 out.file("nan.safetensors") + ": tensor \"latents\" holds NaN or infinite values");
  fs::copy(data_path("tiny-sd1/lora/pytorch_lora_weights.safetensors"), out.file("lora.safetensors"));
  const std::string first = sdtune::io::SafetensorsFile(out.file("lora.safetensors")).tensors()[0].name;
  poison_tensor(out.file("lora.safetensors"), first, INFINITY);
  expect_refused(run(generate(model, out, "--lora " + out.file("lora.safetensors"))), out.file("lora.safetensors") + ": tensor \"");
}

TEST(HostileNumbers, ModelWeightsWithNaNAreRefusedAtLoad) {
  TempDir dir, out;
  const std::string model = patched_model(dir, "unet", sdtune::io::Json::object());
  poison_tensor(model + "/unet/diffusion_pytorch_model.safetensors", "conv_in.bias", NAN);
  expect_refused(run(generate(model, out, "")), model + "/unet/diffusion_pytorch_model.safetensors: tensor \"conv_in.bias\" holds NaN or infinite values");
}

// A 4-image training run on tiny SD 1 checkpointing every step, trained for `steps` steps; returns the
// command, for the test to resume it.
std::string trained_tiny_run(const TempDir& data, const TempDir& out, int steps) {
  sdtune::test::make_dataset(data, 4);
  const std::string train = "train --model " + data_path("tiny-sd1/pipeline") + " --train_data_dir " + data.path.string() +
                            " --resolution 32 --seed 3 --checkpointing_steps 1 --output_dir " + out.path.string();
  const auto r = run(train + " --max_train_steps " + std::to_string(steps));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return train;
}

TEST(HostileNumbers, ANonFiniteLossStopsTrainingAndKeepsTheCheckpoints) {
  TempDir data, out;
  const std::string train = trained_tiny_run(data, out, 2);
  // A resumed checkpoint whose LoRA (the copy resume reads) is finite but overflows the UNet: the first loss is inf or NaN.
  const std::string weights = out.file("checkpoint-2/training_lora_weights.safetensors");
  std::vector<std::string> names;
  {
    const sdtune::io::SafetensorsFile file(weights);  // closed before the file is rewritten
    for (const auto& e : file.tensors()) names.push_back(e.name);
  }
  for (const auto& name : names) poison_tensor(weights, name, 3e38f, /*every=*/true);
  const std::string before = read_all(weights), final_lora = read_all(out.file("pytorch_lora_weights.safetensors"));
  const auto r = run(train + " --max_train_steps 4 --resume_from_checkpoint latest");
  expect_refused(r, out.path.string() + ": step 3: the loss is ");
  EXPECT_NE(r.output.find("The last good checkpoint is " + out.file("checkpoint-2")), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out.file("checkpoint-3")));
  EXPECT_EQ(read_all(out.file("pytorch_lora_weights.safetensors")), final_lora);
  EXPECT_EQ(read_all(weights), before);
}

TEST(HostileFiles, ACheckpointThatPointsOutsideTheDatasetIsRefused) {
  TempDir data, out;
  const std::string train = trained_tiny_run(data, out, 1);
  rewrite_tensor(out.file("checkpoint-1/random_states.safetensors"), "epoch_order", [](std::vector<uint8_t>& bytes) {
    const int64_t far = 1000000;  // an example index far past the 4 there are
    std::memcpy(bytes.data(), &far, sizeof far);
  });
  expect_refused(run(train + " --max_train_steps 2 --resume_from_checkpoint latest"),
                 out.file("checkpoint-1") + "/random_states.safetensors: epoch_order is not an order of this run's 4 examples");
}

TEST(HostileFiles, AVocabularyWithAHugeIdIsRefusedWithoutAllocatingIt) {
  TempDir dir;
  const std::string model = patched_model(dir, "unet", sdtune::io::Json::object());
  sdtune::io::Json vocab = sdtune::io::read_json_file(model + "/tokenizer/vocab.json");
  vocab["zzz</w>"] = 16777215;
  std::ofstream(model + "/tokenizer/vocab.json") << vocab.dump();
  // The same command on the intact tokenizer first: its peak (LibTorch's libraries, ~450 MiB with CUDA
  // ones) is the baseline; a table of 16M token strings would add over 500 MiB to it.
  ASSERT_EQ(run("tokenize --model " + data_path("tiny-sd1/pipeline") + " --prompt x").exit_code, 0);
  const double baseline = sdtune::test::peak_child_memory_mib();
  expect_refused(run("tokenize --model " + model + " --prompt x"), model + "/tokenizer/vocab.json: token \"zzz</w>\" has id 16777215");
  EXPECT_LT(sdtune::test::peak_child_memory_mib(), baseline + 100);
}

TEST(HostileNumbers, TrainingSizesAndPromptsAreCheckedBeforeTraining) {
  TempDir data, out;
  sdtune::test::make_dataset(data, 2);
  const std::string train = "train --model " + data_path("tiny-sd1/pipeline") + " --train_data_dir " + data.path.string() + " --output_dir " + out.path.string();
  expect_refused(run(train + " --resolution 1000000"), "--resolution: must be a multiple of 8 from 8 to 8192");
  std::string words;
  for (int i = 0; i < 6000; ++i) words += "castle ";
  const auto r = run(train + " --resolution 32 --max_train_steps 1 --validation_prompt '" + words + "'");
  expect_refused(r, "--validation_prompt: needs more than 64 chunks of 75 tokens");
  EXPECT_EQ(r.output.find("Steps:"), std::string::npos) << "refused only after training began";
}

TEST(HostileFiles, FifosDevicesAndFoldersAreRefusedNotRead) {
  TempDir dir, out;
  const std::string model = patched_model(dir, "unet", sdtune::io::Json::object());
  fs::remove(model + "/tokenizer/vocab.json");
  ASSERT_EQ(::mkfifo((model + "/tokenizer/vocab.json").c_str(), 0600), 0);
  // `timeout`: a read of the FIFO would block for ever.
  expect_refused(sdtune::test::run_shell("timeout 60 " + std::string(SDTUNE_BINARY) + " tokenize --model " + model + " --prompt x 2>&1"),
                 model + "/tokenizer/vocab.json: is a FIFO (named pipe), not a regular file; refusing to read it");
  expect_refused(run("inspect /dev/zero"), "/dev/zero: is a device, not a regular file; refusing to read it");
  expect_refused(run(generate(data_path("tiny-sd1/pipeline"), out, "--init_latents " + dir.path.string())),
                 dir.path.string() + ": is a folder, not a regular file; refusing to read it");
}

TEST(HostileMessages, NamesAndValuesFromFilesAreEscapedAndBounded) {
  TempDir dir;
  const std::string name = "lora_unet_\x1b[2J" + std::string(100000, 'x');
  const float one = 1;
  sdtune::io::write_safetensors(dir.file("evil.safetensors"), {{name, sdtune::io::DType::F32, {}, &one, 4}}, {{"note", "\x1b]0;owned\x07"}});
  const auto r = run("lora info " + dir.file("evil.safetensors"));
  expect_refused(r, dir.file("evil.safetensors") + ": tensor \"lora_unet_\\x1b[2J");
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos);
  EXPECT_LT(r.output.size(), 3000u);
  const auto listed = run("inspect " + dir.file("evil.safetensors"));
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_EQ(listed.output.find('\x1b'), std::string::npos) << listed.output.substr(0, 300);
  EXPECT_NE(listed.output.find("metadata note = \\x1b]0;owned\\x07"), std::string::npos);
  // info keeps a PNG's newlines and escapes the rest.
  sdtune::io::write_png(dir.file("x.png"), {2, 2, std::vector<uint8_t>(12)}, {{"parameters", "castle\nSteps: 2\x1b[31m"}});
  const auto info = run("info " + dir.file("x.png"));
  EXPECT_NE(info.output.find("castle\nSteps: 2\\x1b[31m"), std::string::npos) << info.output;
}

// std::regex recurses once per character: a long LoRA key or --model overflowed the stack (found
// while fuzzing the LoRA key mapping). Both are now checked with plain string tests.
TEST(HostileMessages, LongKeysAndModelNamesAreRefusedNotAStackOverflow) {
  TempDir dir;
  const float one = 1;
  const std::string key = "unet." + std::string(200000, 'a') + ".processor.to_q_lora.lora.down.weight";
  sdtune::io::write_safetensors(dir.file("long.safetensors"), {{key, sdtune::io::DType::F32, {1, 1}, &one, 4}});
  expect_refused(run("lora info " + dir.file("long.safetensors")), dir.file("long.safetensors") + ": module \"unet.aaaa");
  const std::string model(100000, 'a');  // std::regex overflowed the stack from about 50000; the shell's limit is 128 KiB
  expect_refused(run("generate --prompt x --model " + model), "aaaa");
  const std::string too_long_name = "org/" + std::string(97, 'b');  // the Hub allows 96 characters
  expect_refused(run("generate --prompt x --model " + too_long_name), too_long_name + ": no such folder, and not a Hugging Face id");
}

TEST(HostileImagesAndPrompts, PixelBombsAndHugePromptsAreBounded) {
  TempDir data, out;
  sdtune::test::make_dataset(data, 2);
  // A valid 48x40 PNG whose header claims 60000x60000 pixels (CRC fixed up): refused from the header.
  std::string png = read_all(data.file("img0.png"));
  for (int i = 0; i < 2; ++i) {
    const uint32_t size = 60000;
    for (int b = 0; b < 4; ++b) png[size_t(16 + 4 * i + b)] = char((size >> (24 - 8 * b)) & 0xff);
  }
  uint32_t crc = 0xffffffffu;  // CRC-32 of "IHDR" + 13 data bytes, as PNG chunks carry it
  for (size_t i = 12; i < 29; ++i) {
    crc ^= uint8_t(png[i]);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int b = 0; b < 4; ++b) png[size_t(29 + b)] = char((crc >> (24 - 8 * b)) & 0xff);
  std::ofstream(data.file("img0.png"), std::ios::binary) << png;
  const auto r = run("dataset check --resolution 32 " + data.path.string());
  EXPECT_NE(r.output.find("error: img0.png: unreadable image: 60000x60000 = 3600000000 pixels is over the limit of 178956970"), std::string::npos) << r.output;
  // --max_image_pixels moves both thresholds: 48x40 = 1920 pixels warns above 1000, is refused above 2 x 900.
  const auto warned = run("dataset check --resolution 32 " + data.path.string() + " --max_image_pixels 1000");
  EXPECT_NE(warned.output.find("warning: img1.png: 48x40 pixels is over --max_image_pixels 1000"), std::string::npos) << warned.output;
  const auto refused = run("dataset check --resolution 32 " + data.path.string() + " --max_image_pixels 900");
  EXPECT_NE(refused.output.find("error: img1.png: unreadable image: 48x40 = 1920 pixels is over the limit of 1800"), std::string::npos) << refused.output;
  // BREAK x 20000 would be 20000 chunks through the text encoder.
  std::string breaks;
  for (int i = 0; i < 20000; ++i) breaks += "BREAK ";
  expect_refused(run("generate --model " + data_path("tiny-sd1/pipeline") + " --prompt_weighting a1111 --output " + out.file("o.png") + " --prompt '" + breaks + "'"),
                 "the prompt: needs more than 64 chunks of 75 tokens (BREAK starts a new one); at most 64 are encoded");
  EXPECT_LT(sdtune::test::peak_child_memory_mib(), 1024);
}

// A 2x2 PNG with a zTXt "parameters" chunk that inflates to 64 MB from about 64 KB.
void write_text_bomb(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, 2, 2, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  std::string text(64 << 20, 'a');
  png_text chunk{};
  chunk.compression = PNG_TEXT_COMPRESSION_zTXt;
  chunk.key = const_cast<char*>("parameters");
  chunk.text = text.data();
  chunk.text_length = text.size();
  png_set_text(png, info, &chunk, 1);
  png_write_info(png, info);
  std::vector<uint8_t> row(6, 128);
  for (int y = 0; y < 2; ++y) png_write_row(png, row.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

TEST(HostileImagesAndPrompts, APngTextBombIsSkippedNotInflated) {
  TempDir dir;
  write_text_bomb(dir.file("bomb.png"));
  ASSERT_LT(fs::file_size(dir.file("bomb.png")), 1u << 20);
  sdtune::io::write_png(dir.file("plain.png"), {2, 2, std::vector<uint8_t>(12)}, {{"parameters", "castle"}});
  ASSERT_EQ(run("info " + dir.file("plain.png")).exit_code, 0);
  const double baseline = sdtune::test::peak_child_memory_mib();
  // libpng's chunk limit (8 MB inflated) drops the chunk: the image is shown, the 64 MB text is not.
  const auto r = run("info " + dir.file("bomb.png"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2x2"), std::string::npos) << r.output;
  EXPECT_LT(r.output.size(), 1000u);
  EXPECT_LT(sdtune::test::peak_child_memory_mib(), baseline + 32);
}

TEST(HostileDatasets, MetadataProblemsAreReportedWithFileAndLine) {
  TempDir both, csv, txt;
  sdtune::test::make_dataset(both, 1);
  std::ofstream(both.file("metadata.csv")) << "file_name,text\nimg0.png,x\n";
  expect_refused(run("dataset check " + both.path.string()), both.path.string() + ": has both metadata.jsonl and metadata.csv");
  sdtune::test::make_dataset(csv, 2);
  fs::remove(csv.file("metadata.jsonl"));
  std::ofstream(csv.file("metadata.csv")) << "file_name,text\nimg0.png,\"an open quote\nimg1.png,x\n";
  const auto open_quote = run("dataset check --resolution 32 " + csv.path.string());
  EXPECT_NE(open_quote.output.find("error: metadata.csv line 2: a quoted field opened here is never closed"), std::string::npos) << open_quote.output;
  sdtune::test::make_dataset(txt, 1);
  fs::remove(txt.file("metadata.jsonl"));
  std::ofstream(txt.file("img0.txt")) << "caption \xff\xfe";
  const auto bad_utf8 = run("dataset check --resolution 32 " + txt.path.string());
  EXPECT_NE(bad_utf8.output.find("error: img0.txt: text is not valid UTF-8"), std::string::npos) << bad_utf8.output;
}

TEST(HostileOutputs, NoCommandOverwritesAnExistingFileOrOneItReads) {
  TempDir dir, out;
  const std::string model = patched_model(dir, "unet", sdtune::io::Json::object());
  const std::string unet = model + "/unet/diffusion_pytorch_model.safetensors", text = model + "/text_encoder/model.safetensors";
  const std::string unet_bytes = read_all(unet), text_bytes = read_all(text);
  std::ofstream(out.file("taken.safetensors")) << "mine";
  expect_refused(run(generate(model, out, "--save_latents " + out.file("taken.safetensors"))),
                 out.file("taken.safetensors") + ": already exists (use --overwrite to replace it)");
  expect_refused(run(generate(model, out, "--overwrite --save_latents " + unet)), unet + ": is a file this command reads; refusing to overwrite it");
  expect_refused(run("encode-prompt --model " + model + " --prompt x --output " + out.file("taken.safetensors")),
                 out.file("taken.safetensors") + ": already exists (use --overwrite to replace it)");
  expect_refused(run("encode-prompt --model " + model + " --prompt x --overwrite --output " + text), text + ": is a file this command reads");
  const std::string lora = data_path("tiny-sd1/lora/pytorch_lora_weights.safetensors");
  fs::copy(lora, out.file("lora.safetensors"));
  expect_refused(run("lora convert " + out.file("lora.safetensors") + " " + out.file("taken.safetensors") + " --format kohya"),
                 out.file("taken.safetensors") + ": already exists");
  expect_refused(run("lora convert " + out.file("lora.safetensors") + " " + out.file("lora.safetensors") + " --format kohya --overwrite"),
                 out.file("lora.safetensors") + ": is a file this command reads");
  EXPECT_EQ(read_all(out.file("taken.safetensors")), "mine");
  EXPECT_EQ(read_all(out.file("lora.safetensors")), read_all(lora));
  EXPECT_EQ(read_all(unet), unet_bytes);
  EXPECT_EQ(read_all(text), text_bytes);
}

TEST(HostileOutputs, PromptTagsResolveInsideTheirFolderOnly) {
  TempDir loras, outside, out;
  fs::copy(data_path("tiny-sd1/lora/pytorch_lora_weights.safetensors"), outside.file("secret.safetensors"));
  fs::create_symlink(outside.file("secret.safetensors"), loras.file("link.safetensors"));
  for (const std::string& tag : {"../" + outside.path.filename().string() + "/secret", outside.file("secret"), std::string("link")}) {
    const auto r = run("generate --model " + data_path("tiny-sd1/pipeline") + " --lora_dir " + loras.path.string() + " --output " +
                       out.file("o.png") + " --prompt 'castle <lora:" + tag + ">'");
    expect_refused(r, "--prompt: <lora:" + tag + "> names a file outside --lora_dir");
  }
}

TEST(HostileOutputs, PublishRefusesTrainingStateAnywhereInTheTree) {
  TempDir repo;
  fs::create_directories(repo.path / "extra" / "deep");
  std::ofstream(repo.file("extra/deep/optimizer.pt")) << "x";
  const auto r = run("publish --check " + repo.path.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("holds extra/deep/optimizer.pt (base model or training state)"), std::string::npos) << r.output;
  // A widget image outside the folder would not be on the Hub, even when the file exists here.
  std::ofstream(repo.file("README.md")) << "---\nwidget:\n- output:\n    url: ../" << repo.path.filename().string()
                                        << "/extra/deep/optimizer.pt\n- output:\n    url: /etc/hostname\n---\n";
  const auto card = run("publish --check " + repo.path.string());
  EXPECT_NE(card.output.find("README.md: a widget's image \"../"), std::string::npos) << card.output;
  EXPECT_NE(card.output.find("README.md: a widget's image \"/etc/hostname\" is not a file inside the folder"), std::string::npos)
      << card.output;
}

// A full disk while writing a checkpoint: one error, the earlier checkpoints whole, nothing left
// behind. `prefix` runs the command (environment, LD_PRELOAD); `out` is the full folder.
void expect_full_disk_keeps_earlier_checkpoints(const std::string& prefix, const std::string& out) {
  TempDir data;
  sdtune::test::make_dataset(data, 2);
  const auto r = sdtune::test::run_shell(prefix + " " + std::string(SDTUNE_BINARY) + " train --model " + data_path("tiny-sd1/pipeline") +
                                         " --train_data_dir " + data.path.string() +
                                         " --resolution 32 --checkpointing_steps 1 --max_train_steps 1000 --output_dir " + out + " 2>&1");
  expect_refused(r, "");
  EXPECT_NE(r.output.find("cannot write the checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No space left on device; earlier checkpoints are untouched"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(out + "/checkpoint-1/state.json"));
  for (const auto& checkpoint : fs::directory_iterator(out)) {
    const std::string name = checkpoint.path().filename().string();
    EXPECT_EQ(name.find(".partial-"), std::string::npos) << name;
    if (name.rfind("checkpoint-", 0) != 0) continue;
    for (const char* file : {"pytorch_lora_weights.safetensors", "optimizer.pt", "random_states.safetensors", "state.json"})
      EXPECT_TRUE(fs::exists(checkpoint.path() / file)) << name << "/" << file;
  }
  const auto resumed = run("lora info " + out + "/checkpoint-1/pytorch_lora_weights.safetensors");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
}

// A real full file system: a 1 MB tmpfs, which only root may mount.
TEST(HostileDisk, AFullTmpfsDuringACheckpointKeepsTheEarlierOnes) {
  TempDir mount_point;
  if (::mount("tmpfs", mount_point.path.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (not root); HostileDisk.AWriteWrapper... covers the same";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount(path.c_str()); }
  } unmount{mount_point.path.string()};
  expect_full_disk_keeps_earlier_checkpoints("", mount_point.file("run"));
}

// lora fuse onto a full file system: one error naming the output, no half-written folder left.
TEST(HostileDisk, AFuseOntoAFullTmpfsLeavesNothing) {
  TempDir mount_point;
  if (::mount("tmpfs", mount_point.path.c_str(), "tmpfs", 0, "size=512k") != 0) GTEST_SKIP() << "cannot mount a tmpfs here (not root)";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount(path.c_str()); }
  } unmount{mount_point.path.string()};
  const auto r = run("lora fuse --model " + data_path("tiny-sd1/pipeline") + " --lora " + data_path("tiny-sd1/lora") + " --output " +
                     mount_point.file("fused"));
  expect_refused(r, mount_point.file("fused") + ": cannot write the fused model (");
  EXPECT_NE(r.output.find("write failed: No space left on device"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_empty(mount_point.path)) << "left behind in the full folder";
}

// Anywhere: write() and writev() into the output folder fail with ENOSPC after 1 MB.
TEST(HostileDisk, AWriteWrapperFailingWithEnospcKeepsTheEarlierCheckpoints) {
  TempDir out;
  expect_full_disk_keeps_earlier_checkpoints("LD_PRELOAD=" + std::string(SDTUNE_ENOSPC_WRAPPER) + " SDTUNE_TEST_ENOSPC_DIR=" + out.path.string() +
                                                 " SDTUNE_TEST_ENOSPC_BYTES=1000000",
                                             out.file("run"));
}

}  // namespace
