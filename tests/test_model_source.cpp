#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "io/model_folder.h"
#include "io/model_source.h"
#include "test_util.h"
#include "train/dataset.h"

namespace fs = std::filesystem;
using sdtune::test::TempDir;

namespace {

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  std::string old;
  bool had;
  ScopedEnv(const std::string& n, const char* value) : name(n) {
    const char* v = std::getenv(n.c_str());
    had = v != nullptr;
    if (had) old = v;
    if (value) ::setenv(n.c_str(), value, 1);
    else ::unsetenv(n.c_str());
  }
  ~ScopedEnv() {
    if (had) ::setenv(name.c_str(), old.c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

using sdtune::test::error_of;

TEST(ModelSource, FolderIsUsedAsIs) {
  const std::string dir = sdtune::test::data_path("tiny-sd2/pipeline");
  EXPECT_EQ(sdtune::io::resolve_model_dir(dir), dir);
}

TEST(ModelSource, HubIdResolvesThroughRefsToSnapshot) {
  TempDir cache;
  const fs::path repo = cache.path / "models--stabilityai--stable-diffusion-2";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / "abc123" / "unet");
  fs::create_directories(repo / "snapshots" / "def456");
  std::ofstream(repo / "refs" / "main") << "abc123\n";
  std::ofstream(repo / "refs" / "fp16") << "def456";
  ScopedEnv hub("HF_HUB_CACHE", cache.path.c_str());
  EXPECT_EQ(sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2"), (repo / "snapshots" / "abc123").string());
  EXPECT_EQ(sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2", "fp16"),
            (repo / "snapshots" / "def456").string());
  EXPECT_EQ(sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2", "def456"),
            (repo / "snapshots" / "def456").string());
  const std::string missing_rev = error_of([] { sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2", "v9"); });
  EXPECT_NE(missing_rev.find("no snapshot for revision \"v9\""), std::string::npos) << missing_rev;
  // A ref file naming ".." would make the repository folder itself the "snapshot".
  std::ofstream(repo / "refs" / "escape") << "..";
  EXPECT_NE(error_of([] { sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2", "escape"); })
                .find("no snapshot for revision \"escape\""),
            std::string::npos);
}

TEST(ModelSource, HubDatasetResolvesToItsTrainSplitFolder) {
  TempDir cache;
  const fs::path snapshot = cache.path / "datasets--someone--misato" / "snapshots" / "c0ffee";
  fs::create_directories(snapshot / "train");
  fs::create_directories(cache.path / "datasets--someone--misato" / "refs");
  std::ofstream(cache.path / "datasets--someone--misato" / "refs" / "main") << "c0ffee";
  std::ofstream(snapshot / "train" / "metadata.jsonl") << "{}\n";
  ScopedEnv hub("HF_HUB_CACHE", cache.path.c_str());
  const std::string root = sdtune::io::resolve_dataset_dir("someone/misato");
  EXPECT_EQ(root, snapshot.string());
  EXPECT_EQ(sdtune::train::locate_image_folder(root), (snapshot / "train").string());
  // A Parquet dataset (datasets' push_to_hub) is refused with the file named.
  const fs::path parquet = cache.path / "datasets--someone--parquet" / "snapshots" / "1" / "data";
  fs::create_directories(parquet);
  std::ofstream(parquet / "train-00000-of-00001.parquet") << "PAR1";
  const std::string message = error_of([&] { sdtune::train::locate_image_folder(parquet.parent_path().string()); });
  EXPECT_NE(message.find("train-00000-of-00001.parquet: is a Parquet/Arrow dataset"), std::string::npos) << message;
  const std::string missing = error_of([] { sdtune::io::resolve_dataset_dir("someone/absent"); });
  EXPECT_NE(missing.find("datasets--someone--absent"), std::string::npos) << missing;
  EXPECT_NE(missing.find("--repo-type dataset"), std::string::npos) << missing;
}

TEST(ModelSource, CacheLocationFollowsEnvironment) {
  ScopedEnv hub("HF_HUB_CACHE", nullptr);
  ScopedEnv home("HF_HOME", "/somewhere/hf");
  EXPECT_EQ(sdtune::io::hf_hub_cache_dir(), "/somewhere/hf/hub");
  ScopedEnv hub2("HF_HUB_CACHE", "/direct/cache");
  EXPECT_EQ(sdtune::io::hf_hub_cache_dir(), "/direct/cache");
}

TEST(ModelSource, MissingModelSaysWhereItLooked) {
  TempDir cache;
  ScopedEnv hub("HF_HUB_CACHE", cache.path.c_str());
  const std::string message = error_of([] { sdtune::io::resolve_model_dir("stabilityai/stable-diffusion-2"); });
  EXPECT_NE(message.find((cache.path / "models--stabilityai--stable-diffusion-2").string()), std::string::npos) << message;
  EXPECT_NE(message.find("huggingface-cli download"), std::string::npos) << message;
  EXPECT_NE(error_of([] { sdtune::io::resolve_model_dir("../no-such-dir/x"); }), "");
}

TEST(ModelSource, PickleFilesAreRefusedWithExplanation) {
  TempDir dir;
  std::ofstream(dir.file("model.ckpt")) << "pickle";
  const std::string message = error_of([&] { sdtune::io::resolve_model_dir(dir.file("model.ckpt")); });
  EXPECT_NE(message.find("arbitrary code"), std::string::npos) << message;
  EXPECT_NE(message.find("safetensors"), std::string::npos) << message;

  fs::create_directories(dir.path / "pipe" / "unet");
  std::ofstream(dir.path / "pipe" / "unet" / "diffusion_pytorch_model.bin") << "pickle";
  sdtune::io::ModelFolder folder((dir.path / "pipe").string());
  const std::string folder_message = error_of([&] { folder.weight_files("unet"); });
  EXPECT_NE(folder_message.find("diffusion_pytorch_model.bin"), std::string::npos) << folder_message;
  EXPECT_NE(folder_message.find("arbitrary code"), std::string::npos) << folder_message;
}

TEST(ModelFolder, FindsConfigsWeightsVariantsAndShards) {
  sdtune::io::ModelFolder fixture(sdtune::test::data_path("tiny-sd2/pipeline"));
  EXPECT_EQ(fixture.model_index()["unet"][1], "UNet2DConditionModel");
  EXPECT_EQ(fixture.component_config("scheduler")["_class_name"], "DDIMScheduler");
  EXPECT_EQ(fs::path(fixture.weight_files("text_encoder")[0]).filename(), "model.safetensors");
  EXPECT_EQ(fs::path(fixture.weight_files("unet")[0]).filename(), "diffusion_pytorch_model.safetensors");
  const std::string no_variant = error_of([&] { fixture.weight_files("unet", "fp16"); });
  EXPECT_NE(no_variant.find("no fp16 variant"), std::string::npos) << no_variant;
  EXPECT_NE(error_of([&] { fixture.component_dir("safety_checker"); }).find("no safety_checker/"), std::string::npos);

  TempDir dir;
  fs::create_directories(dir.path / "unet");
  std::ofstream(dir.path / "unet" / "diffusion_pytorch_model.fp16.safetensors") << "x";
  std::ofstream(dir.path / "unet" / "diffusion_pytorch_model.safetensors.index.json")
      << R"({"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                            "b": "diffusion_pytorch_model-00002-of-00002.safetensors",
                            "c": "diffusion_pytorch_model-00001-of-00002.safetensors"}})";
  sdtune::io::ModelFolder folder(dir.path.string());
  EXPECT_EQ(fs::path(folder.weight_files("unet", "fp16")[0]).filename(), "diffusion_pytorch_model.fp16.safetensors");
  const auto shards = folder.weight_files("unet");
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(fs::path(shards[1]).filename(), "diffusion_pytorch_model-00002-of-00002.safetensors");

  std::ofstream(dir.path / "unet" / "diffusion_pytorch_model.safetensors.index.json")
      << R"({"weight_map": {"a": "../../etc/passwd"}})";
  EXPECT_NE(error_of([&] { folder.weight_files("unet"); }).find("outside the folder"), std::string::npos);
}

TEST(JsonFile, AcceptsPythonInfinityAndNaN) {
  const auto j = sdtune::io::parse_json_text(R"({"a": -Infinity, "b": Infinity, "c": NaN, "s": "NaN Infinity"})", "x");
  EXPECT_TRUE(std::isinf(j["a"].get<double>()) && j["a"].get<double>() < 0);
  EXPECT_TRUE(std::isinf(j["b"].get<double>()) && j["b"].get<double>() > 0);
  EXPECT_TRUE(std::isnan(j["c"].get<double>()));  // refused later wherever a finite number is meant
  EXPECT_EQ(j["s"], "NaN Infinity");
  const std::string message = error_of([] { sdtune::io::parse_json_text("{\"a\": [1,", "cfg.json"); });
  EXPECT_NE(message.find("cfg.json: invalid JSON"), std::string::npos) << message;
  const sdtune::io::Json cfg = {{"n", "three"}};
  const std::string type_error = error_of([&] { sdtune::io::config_value<int>(cfg, "n", 1, "unet/config.json"); });
  EXPECT_NE(type_error.find("config key \"n\""), std::string::npos) << type_error;
}

}  // namespace

#include "io/adapter_config.h"

namespace {

TEST(AdapterConfig, ReadsPeftFields) {
  TempDir dir;
  EXPECT_FALSE(sdtune::io::read_adapter_config(dir.path.string()).has_value());
  std::ofstream(dir.file("adapter_config.json"))
      << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["to_k", "to_q"],
            "rank_pattern": {"to_v": 2}, "alpha_pattern": {}, "use_rslora": false, "lora_dropout": 0.0})";
  const auto c = sdtune::io::read_adapter_config(dir.path.string());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->rank, 4);
  EXPECT_EQ(c->lora_alpha, 8);
  EXPECT_EQ(c->target_modules, (std::vector<std::string>{"to_k", "to_q"}));
  EXPECT_EQ(c->rank_pattern.at("to_v"), 2);
  std::ofstream(dir.file("adapter_config.json"), std::ios::trunc) << R"({"peft_type": "LORA", "r": "four"})";
  EXPECT_NE(error_of([&] { sdtune::io::read_adapter_config(dir.path.string()); }).find("adapter_config.json"), std::string::npos);
}

}  // namespace
