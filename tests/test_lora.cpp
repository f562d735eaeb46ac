#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/json_file.h"
#include "io/model_files.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"
#include "lora/lora_file.h"
#include "lora/lora_merge.h"
#include "pipeline/components.h"
#include "test_util.h"
#include "torch_test_util.h"

using sdtune::test::data_path;
using sdtune::test::relative_error;

namespace {

class LoraFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    folder_ = std::make_unique<sdtune::io::ModelFiles>(data_path(GetParam() + "/pipeline"));
    model_ = sdtune::pipeline::load_stable_diffusion(*folder_, {});
    unet_ref_ = sdtune::io::read_all_tensors(data_path(GetParam() + "/ref/unet.safetensors"));
    lora_ref_ = sdtune::io::read_all_tensors(data_path(GetParam() + "/ref/lora_unet.safetensors"));
  }
  torch::Tensor unet_out(const std::string& suffix = "") {
    torch::NoGradGuard no_grad;
    return model_.unet->forward(unet_ref_.at("sample" + suffix), unet_ref_.at("timestep" + suffix),
                                unet_ref_.at("encoder_hidden_states" + suffix));
  }
  std::string file(const std::string& name) const { return data_path(GetParam() + "/" + name); }

  std::unique_ptr<sdtune::io::ModelFiles> folder_;
  sdtune::pipeline::StableDiffusion model_;
  sdtune::io::TensorMap unet_ref_, lora_ref_;
};

TEST_P(LoraFixture, DiffusersFileEqualsLoadLoraWeights) {
  sdtune::lora::LoraMerger merger(*model_.unet, *model_.text_encoder);
  const auto lora = sdtune::lora::read_lora(file("lora"));  // the folder: pytorch_lora_weights.safetensors
  EXPECT_EQ(lora.format, "diffusers");
  const auto report = merger.merge(lora, 1.0);
  EXPECT_EQ(report.unet_modules, GetParam() == "tiny-sd2" ? 32 : 48);
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out")), 1e-4);
  EXPECT_LT(relative_error(unet_out("_b"), lora_ref_.at("out_b")), 1e-4);
}

TEST_P(LoraFixture, WeightsScaleTheLoraAndUnmergeIsBitExact) {
  const auto before = unet_out();
  std::vector<torch::Tensor> originals;
  for (const auto& p : model_.unet->parameters()) originals.push_back(p.clone());
  sdtune::lora::LoraMerger merger(*model_.unet, *model_.text_encoder);
  const auto lora = sdtune::lora::read_lora(file("lora/pytorch_lora_weights.safetensors"));
  merger.merge(lora, 0.5);
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out_scale0.5")), 1e-4);
  merger.unmerge();
  merger.merge(lora, 2.0);
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out_scale2")), 1e-4);
  merger.unmerge();
  size_t i = 0;
  for (const auto& p : model_.unet->parameters()) EXPECT_TRUE(torch::equal(p, originals[i++]));
  EXPECT_TRUE(torch::equal(unet_out(), before));
}

TEST_P(LoraFixture, KohyaFilesWithAlphaEqualDiffusers) {
  sdtune::lora::LoraMerger merger(*model_.unet, *model_.text_encoder);
  const auto kohya = sdtune::lora::read_lora(file("lora_kohya/lora_kohya.safetensors"));
  EXPECT_EQ(kohya.format, "kohya");
  EXPECT_EQ(merger.merge(kohya, 1.0).unet_modules, GetParam() == "tiny-sd2" ? 32 : 48);
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out")), 1e-4);
  merger.unmerge();
  merger.merge(sdtune::lora::read_lora(file("lora_kohya/lora_kohya_alpha8.safetensors")), 1.0);  // alpha 8 / rank 4 = x2
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out_kohya_alpha8")), 1e-4);
  EXPECT_LT(relative_error(unet_out(), lora_ref_.at("out_scale2")), 1e-4);
}

TEST_P(LoraFixture, PipelineLatentsEqualDiffusersWithLora) {
  const auto ref = sdtune::io::read_all_tensors(file("ref/lora_pipeline.safetensors"));
  const auto constants = sdtune::io::read_json_file(file("ref/manifest.json"))["constants"];
  sdtune::pipeline::GenerationRequest r;
  r.prompt = constants["PROMPTS"][0];
  r.negative_prompt = constants["PROMPTS"][5];
  r.guidance_scale = 6;
  r.steps = 10;
  r.seed = 1234;
  r.height = constants["image_hw"][0];
  r.width = constants["image_hw"][1];
  sdtune::lora::LoraMerger merger(*model_.unet, *model_.text_encoder);
  for (const char* name : {"ddim", "euler", "pndm"}) {
    auto run = [&](const sdtune::pipeline::GenerationRequest& request) {
      auto s = sdtune::schedulers::make_scheduler(name, folder_->component_config("scheduler"), {}, "s");
      return sdtune::pipeline::generate(model_, *s, request).latents;
    };
    auto explicit_request = r;
    explicit_request.init_latents = ref.at("init_latents");
    merger.merge(sdtune::lora::read_lora(file("lora")), 1.0);
    EXPECT_LT(relative_error(run(r), ref.at(std::string("latents_seed_") + name)), 1e-3) << name;
    EXPECT_LT(relative_error(run(explicit_request), ref.at(std::string("latents_explicit_") + name)), 1e-3) << name;
    merger.unmerge();
    merger.merge(sdtune::lora::read_lora(file("lora")), 0.5);
    EXPECT_LT(relative_error(run(explicit_request), ref.at(std::string("latents_explicit_") + name + "_scale0.5")), 1e-3) << name;
    merger.unmerge();
    // kohya alpha 8 is weight 2, so weight 0.25 equals diffusers' scale 0.5.
    merger.merge(sdtune::lora::read_lora(file("lora_kohya/lora_kohya_alpha8.safetensors")), 0.25);
    EXPECT_LT(relative_error(run(explicit_request), ref.at(std::string("latents_explicit_") + name + "_scale0.5")), 1e-3) << name;
    merger.unmerge();
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, LoraFixture, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(Lora, LoraForAnotherModelIsRefusedUnlessPartial) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
  const auto sd1_lora = sdtune::lora::read_lora(data_path("tiny-sd1/lora_kohya/lora_kohya.safetensors"));
  try {
    merger.merge(sd1_lora, 1.0);
    FAIL();
  } catch (const sdtune::Error& e) {
    EXPECT_NE(std::string(e.what()).find("another base model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lora_unet_"), std::string::npos) << e.what();
  }
  const auto report = merger.merge(sd1_lora, 1.0, /*allow_partial=*/true);
  EXPECT_GT(report.skipped.size(), 0u);
  EXPECT_EQ(report.unet_modules + int64_t(report.skipped.size()), int64_t(sd1_lora.modules.size()));
}

TEST(Lora, PeftKeysAndAdapterConfigAlpha) {
  // The same weights written with PEFT key names and an adapter_config.json giving alpha 8.
  sdtune::test::TempDir dir;
  const auto diffusers = sdtune::io::read_all_tensors(data_path("tiny-sd2/lora/pytorch_lora_weights.safetensors"));
  sdtune::io::TensorMap peft;
  for (const auto& [key, t] : diffusers) {
    std::string k = key.substr(5);  // drop "unet."
    k.replace(k.find(".lora."), 6, ".");
    k.replace(k.find("down.weight") != std::string::npos ? k.find("down.weight") : k.find("up.weight"),
              k.find("down.weight") != std::string::npos ? 11 : 9,
              k.find("down.weight") != std::string::npos ? "lora_A.default.weight" : "lora_B.default.weight");
    peft["base_model.model." + k] = t;
  }
  sdtune::io::save_tensors(dir.file("adapter_model.safetensors"), peft);
  std::ofstream(dir.file("adapter_config.json")) << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8})";
  const auto lora = sdtune::lora::read_lora(dir.path.string());
  EXPECT_EQ(lora.format, "peft");
  ASSERT_EQ(lora.modules.size(), 32u);
  EXPECT_EQ(lora.modules[0].alpha.value(), 8.0);

  sdtune::io::ModelFiles folder(data_path("tiny-sd2/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
  merger.merge(lora, 1.0);
  const auto unet_ref = sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/unet.safetensors"));
  torch::NoGradGuard no_grad;
  const auto out = model.unet->forward(unet_ref.at("sample"), unet_ref.at("timestep"), unet_ref.at("encoder_hidden_states"));
  EXPECT_LT(relative_error(out, sdtune::io::read_all_tensors(data_path("tiny-sd2/ref/lora_unet.safetensors")).at("out_scale2")), 1e-4);
}

TEST(Lora, FlagParsingAndBadFiles) {
  EXPECT_EQ(sdtune::lora::parse_lora_flag("a/b.safetensors:0.7"), std::make_pair(std::string("a/b.safetensors"), 0.7));
  EXPECT_EQ(sdtune::lora::parse_lora_flag("a/b.safetensors"), std::make_pair(std::string("a/b.safetensors"), 1.0));
  EXPECT_THROW(sdtune::lora::read_lora(data_path("tiny-sd2/ref/unet.safetensors")), sdtune::Error);  // not LoRA keys
  EXPECT_THROW(sdtune::lora::read_lora(data_path("tiny-sd2/ref")), sdtune::Error);                  // several files
}

}  // namespace

#include "lora/module_names.h"
#include "pipeline/lora_fuse.h"

namespace {

TEST(LoraNames, KohyaFlatteningOfEveryModuleReadsBack) {
  for (const char* variant : {"tiny-sd1", "tiny-sd2"}) {
    sdtune::io::ModelFiles folder(data_path(std::string(variant) + "/pipeline"));
    auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
    for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(model.unet.get()), static_cast<torch::nn::Module*>(model.text_encoder.get()),
                                 static_cast<torch::nn::Module*>(model.vae.get())})
      for (const auto& p : m->named_parameters()) {
        const std::string module = p.key().substr(0, p.key().rfind('.'));
        EXPECT_EQ(sdtune::lora::unflatten_module_name(sdtune::lora::flatten_module_name(module)), module);
      }
  }
}

TEST(LoraConvert, RoundTripsGiveIdenticalTensors) {
  sdtune::test::TempDir dir;
  const auto original = sdtune::lora::read_lora(data_path("tiny-sd2/lora/pytorch_lora_weights.safetensors"));
  sdtune::lora::write_lora(original, dir.file("k.safetensors"), sdtune::lora::LoraFormat::Kohya);
  const auto kohya = sdtune::lora::read_lora(dir.file("k.safetensors"));
  EXPECT_EQ(kohya.format, "kohya");
  sdtune::lora::write_lora(kohya, dir.file("d.safetensors"), sdtune::lora::LoraFormat::Diffusers);
  const auto a = sdtune::io::read_all_tensors(data_path("tiny-sd2/lora/pytorch_lora_weights.safetensors"));
  const auto b = sdtune::io::read_all_tensors(dir.file("d.safetensors"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, t] : a) EXPECT_TRUE(torch::equal(t, b.at(key))) << key;
  // kohya's own file: same keys as diffusers' converter wrote (alpha as float).
  const auto reference = sdtune::io::read_all_tensors(data_path("tiny-sd2/lora_kohya/lora_kohya.safetensors"));
  const auto ours = sdtune::io::read_all_tensors(dir.file("k.safetensors"));
  ASSERT_EQ(reference.size(), ours.size());
  for (const auto& [key, t] : reference) EXPECT_TRUE(torch::equal(t.to(torch::kFloat), ours.at(key).to(torch::kFloat))) << key;

  // alpha 8 / rank 4 through kohya -> PEFT -> kohya: folded into the up matrices (x2, exact), alpha = rank.
  const auto alpha8 = sdtune::lora::read_lora(data_path("tiny-sd2/lora_kohya/lora_kohya_alpha8.safetensors"));
  sdtune::lora::write_lora(alpha8, dir.file("p.safetensors"), sdtune::lora::LoraFormat::Peft);
  const auto peft = sdtune::lora::read_lora(dir.file("p.safetensors"));
  EXPECT_EQ(peft.format, "peft");
  sdtune::lora::write_lora(peft, dir.file("k8.safetensors"), sdtune::lora::LoraFormat::Kohya);
  const auto back = sdtune::io::read_all_tensors(dir.file("k8.safetensors"));
  for (const auto& [key, t] : sdtune::io::read_all_tensors(data_path("tiny-sd2/lora_kohya/lora_kohya_alpha8.safetensors"))) {
    const bool up = key.find(".lora_up.") != std::string::npos, alpha = key.find(".alpha") != std::string::npos;
    EXPECT_TRUE(torch::equal(up ? t * 2 : alpha ? torch::tensor(4.0f) : t, back.at(key))) << key;
  }
}

// The scale each tool gives a module it reads from a file, as its loader's source states it.
struct StoredModule {
  torch::Tensor down, up;
  double scale;
};
using ScaleRule = std::function<double(const sdtune::io::TensorMap&, const std::string& stem, int64_t rank,
                                       const sdtune::io::Json& adapter_metadata, const std::string& component)>;

// A1111 extensions-builtin/Lora/network.py NetworkModule.calc_scale: "scale", else alpha / dim where
// the module has an "alpha" tensor, else 1.0. ComfyUI comfy/weight_adapter/lora.py
// LoRAAdapter.calculate_weight: v[2] / mat2.shape[0] when "<key>.alpha" was stored (comfy/lora.py
// load_lora), else 1.0. stable-diffusion.cpp lora.hpp: "<key>.scale", else "<key>.alpha" / rank, else 1.
double scale_by_alpha_tensor(const sdtune::io::TensorMap& file, const std::string& stem, int64_t rank, const sdtune::io::Json&,
                             const std::string&) {
  if (file.count(stem + ".scale")) return file.at(stem + ".scale").item<double>();
  return file.count(stem + ".alpha") ? file.at(stem + ".alpha").item<double>() / double(rank) : 1.0;
}

// diffusers 0.40: kohya keys go through loaders/lora_conversion_utils.py
// _convert_non_diffusers_lora_to_diffusers, whose ".alpha" tensors become network_alphas (alpha / rank);
// diffusers and PEFT keys get the LoraConfig of "lora_adapter_metadata" (loaders/peft.py
// load_lora_adapter; alpha_pattern by module suffix), else utils/peft_utils.py get_peft_kwargs: lora_alpha = r.
double scale_by_diffusers(const sdtune::io::TensorMap& file, const std::string& stem, int64_t rank, const sdtune::io::Json& metadata,
                          const std::string& component) {
  if (stem.rfind("lora_unet_", 0) == 0 || stem.rfind("lora_te_", 0) == 0)
    return file.count(stem + ".alpha") ? file.at(stem + ".alpha").item<double>() / double(rank) : 1.0;
  double alpha = double(rank);
  if (metadata.contains(component + ".lora_alpha")) alpha = metadata[component + ".lora_alpha"].get<double>();
  const sdtune::io::Json patterns = metadata.value(component + ".alpha_pattern", sdtune::io::Json::object());
  for (const auto& [pattern, value] : patterns.items())
    if (stem.size() >= pattern.size() && stem.compare(stem.size() - pattern.size(), pattern.size(), pattern) == 0) alpha = value.get<double>();
  return alpha / double(rank);
}

// Every stored module of a written file as `rule` reads it, keyed by its stem.
std::map<std::string, StoredModule> modules_as_read(const std::string& path, const ScaleRule& rule) {
  const auto tensors = sdtune::io::read_all_tensors(path);
  const auto file_metadata = sdtune::io::SafetensorsFile(path).metadata();
  sdtune::io::Json adapter_metadata = sdtune::io::Json::object();
  if (file_metadata.count("lora_adapter_metadata")) adapter_metadata = sdtune::io::Json::parse(file_metadata.at("lora_adapter_metadata"));
  std::map<std::string, StoredModule> out;
  for (const auto& [up_suffix, down_suffix] : std::vector<std::pair<std::string, std::string>>{
           {".lora_up.weight", ".lora_down.weight"}, {".lora.up.weight", ".lora.down.weight"}, {".lora_B.weight", ".lora_A.weight"}})
    for (const auto& [key, up] : tensors) {
      if (key.size() < up_suffix.size() || key.compare(key.size() - up_suffix.size(), up_suffix.size(), up_suffix) != 0) continue;
      const std::string stem = key.substr(0, key.size() - up_suffix.size());
      const torch::Tensor down = tensors.at(stem + down_suffix);
      const std::string component = stem.rfind("text_encoder", 0) == 0 || stem.rfind("lora_te_", 0) == 0 ? "text_encoder" : "unet";
      out[stem] = {down, up, rule(tensors, stem, down.size(0), adapter_metadata, component)};
    }
  return out;
}

TEST(LoraStrength, EveryToolAppliesWhatSdtuneWritesAtTheTrainedStrength) {
  // A LoRA trained with alpha 3 / rank 4 (a scale that is no power of two), written in each format.
  sdtune::test::TempDir dir;
  auto lora = sdtune::lora::read_lora(data_path("tiny-sd2/lora/pytorch_lora_weights.safetensors"));
  for (auto& m : lora.modules) m.alpha = 3.0;
  std::map<std::string, torch::Tensor> expected;  // "module" -> 3/4 * up @ down
  for (const auto& m : lora.modules) expected[m.module] = torch::matmul(m.up, m.down) * 0.75;
  const std::map<std::string, ScaleRule> tools{{"A1111/ComfyUI/stable-diffusion.cpp", scale_by_alpha_tensor}, {"diffusers", scale_by_diffusers}};
  for (const auto& [name, format] : std::vector<std::pair<std::string, sdtune::lora::LoraFormat>>{
           {"diffusers", sdtune::lora::LoraFormat::Diffusers}, {"peft", sdtune::lora::LoraFormat::Peft}, {"kohya", sdtune::lora::LoraFormat::Kohya}}) {
    const std::string path = dir.file(name + ".safetensors");
    sdtune::lora::write_lora(lora, path, format);
    const auto ours = sdtune::lora::read_lora(path);
    for (const auto& [tool, rule] : tools) {
      const auto stored = modules_as_read(path, rule);
      ASSERT_EQ(stored.size(), lora.modules.size()) << name;
      for (const auto& m : ours.modules) {
        const auto& s = stored.at(m.key_prefix);
        EXPECT_LT(relative_error(torch::matmul(s.up, s.down) * s.scale, expected.at(m.module)), 1e-6) << tool << " reading " << name << ": " << m.key_prefix;
      }
    }
  }
  // Kept apart (a checkpoint's resume copy), only diffusers would read it at that strength.
  sdtune::lora::write_lora(lora, dir.file("as_trained.safetensors"), sdtune::lora::LoraFormat::Diffusers, sdtune::lora::AlphaForm::AsTrained);
  const auto apart = modules_as_read(dir.file("as_trained.safetensors"), scale_by_alpha_tensor);
  EXPECT_EQ(apart.begin()->second.scale, 1.0);
  EXPECT_EQ(modules_as_read(dir.file("as_trained.safetensors"), scale_by_diffusers).begin()->second.scale, 0.75);
  const auto exact = sdtune::lora::read_lora(dir.file("as_trained.safetensors"));
  EXPECT_TRUE(torch::equal(exact.modules[0].up, lora.modules[0].up));
  EXPECT_EQ(*exact.modules[0].alpha, 3.0);
}

TEST(LoraFuse, FusedFolderGeneratesWhatTheLoraGenerates) {
  sdtune::test::TempDir dir;
  sdtune::io::ModelFiles source(data_path("tiny-sd2/pipeline"));
  const auto lora = sdtune::lora::read_lora(data_path("tiny-sd2/lora"));
  const std::string fused_dir = dir.file("fused");
  const auto reports = sdtune::pipeline::fuse_loras(source, {{lora, 0.7}}, fused_dir, false);
  EXPECT_EQ(reports[0].unet_modules, 32);
  EXPECT_THROW(sdtune::pipeline::fuse_loras(source, {{lora, 0.7}}, fused_dir, false), sdtune::Error);  // never overwrites

  sdtune::pipeline::GenerationRequest r;
  r.prompt = "a castle";
  r.steps = 5;
  r.seed = 3;
  r.width = 24;
  r.height = 32;
  auto with_lora = sdtune::pipeline::load_stable_diffusion(source, {});
  sdtune::lora::LoraMerger merger(*with_lora.unet, *with_lora.text_encoder);
  merger.merge(lora, 0.7);
  auto s1 = sdtune::schedulers::make_scheduler("", source.component_config("scheduler"), {}, "s");
  const auto expected = sdtune::pipeline::generate(with_lora, *s1, r).latents;
  sdtune::io::ModelFiles fused(fused_dir);
  auto fused_model = sdtune::pipeline::load_stable_diffusion(fused, {});
  auto s2 = sdtune::schedulers::make_scheduler("", fused.component_config("scheduler"), {}, "s");
  EXPECT_LT(relative_error(sdtune::pipeline::generate(fused_model, *s2, r).latents, expected), 1e-4);
}

}  // namespace

namespace {

TEST(Lora, ConvolutionAndTextEncoderModulesMerge) {
  // kohya keys on a 1x1 conv (SD1's proj_in), a 3x3 conv (a resnet's conv1) and a CLIP projection.
  sdtune::test::TempDir dir;
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  std::map<std::string, torch::Tensor> unet_params, te_params;
  for (const auto& p : model.unet->named_parameters()) unet_params[p.key()] = p.value().clone();
  for (const auto& p : model.text_encoder->named_parameters()) te_params[p.key()] = p.value().clone();
  const auto& proj_in = unet_params.at("down_blocks.0.attentions.0.proj_in.weight");   // [8, 8, 1, 1]
  const auto& conv1 = unet_params.at("down_blocks.0.resnets.0.conv1.weight");          // [8, 8, 3, 3]
  const auto& q_proj = te_params.at("encoder.layers.0.self_attn.q_proj.weight");       // [32, 32]
  torch::manual_seed(0);
  sdtune::io::TensorMap file{
      {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", torch::randn({2, proj_in.size(1), 1, 1})},
      {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", torch::randn({proj_in.size(0), 2, 1, 1})},
      {"lora_unet_down_blocks_0_attentions_0_proj_in.alpha", torch::tensor(1.0f)},
      {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", torch::randn({2, conv1.size(1), 3, 3})},
      {"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", torch::randn({conv1.size(0), 2, 1, 1})},
      {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", torch::randn({2, q_proj.size(1)})},
      {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", torch::randn({q_proj.size(0), 2})}};
  sdtune::io::save_tensors(dir.file("mixed.safetensors"), file);
  sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
  const auto report = merger.merge(sdtune::lora::read_lora(dir.file("mixed.safetensors")), 1.0);
  EXPECT_EQ(report.unet_modules, 2);
  EXPECT_EQ(report.text_encoder_modules, 1);
  auto merged = [&](torch::nn::Module& m, const std::string& name) {
    for (const auto& p : m.named_parameters())
      if (p.key() == name) return p.value().clone();
    return torch::Tensor();
  };
  const auto& s = file;
  const auto proj_delta = torch::matmul(s.at("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight").flatten(1),
                                        s.at("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight").flatten(1)) * 0.5;  // alpha 1 / rank 2
  EXPECT_TRUE(torch::allclose(merged(*model.unet, "down_blocks.0.attentions.0.proj_in.weight"), proj_in + proj_delta.view(proj_in.sizes()), 1e-5, 1e-6));
  const auto conv_delta = torch::matmul(s.at("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight").flatten(1),
                                        s.at("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight").flatten(1));
  EXPECT_TRUE(torch::allclose(merged(*model.unet, "down_blocks.0.resnets.0.conv1.weight"), conv1 + conv_delta.view(conv1.sizes()), 1e-5, 1e-6));
  const auto q_delta = torch::matmul(s.at("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"),
                                     s.at("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"));
  EXPECT_TRUE(torch::allclose(merged(*model.text_encoder, "encoder.layers.0.self_attn.q_proj.weight"), q_proj + q_delta, 1e-5, 1e-6));
  merger.unmerge();
  EXPECT_TRUE(torch::equal(merged(*model.unet, "down_blocks.0.resnets.0.conv1.weight"), conv1));
}

}  // namespace

namespace {

// LyCORIS modules merge into exactly the weights LyCORIS itself computes (tests/data/lycoris, made by
// scripts/make_lycoris_fixtures.py); DoRA at a weight other than 1 as ComfyUI applies it.
TEST(Lycoris, LohaLokrLoconAndDoraMergeAsLycorisComputesThem) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  const auto refs = sdtune::io::read_all_tensors(data_path("lycoris/references.safetensors"));
  const auto cases = sdtune::io::Json::parse(sdtune::io::SafetensorsFile(data_path("lycoris/references.safetensors")).metadata().at("cases"));
  sdtune::test::TempDir dir;
  auto lora = sdtune::lora::read_lora(data_path("lycoris/lycoris.safetensors"));
  std::map<std::string, std::string> types;
  for (const auto& m : lora.modules) types[m.module] = m.type_name();
  const std::map<std::string, std::string> expected_types{{"loha", "loha"},       {"loha_tucker", "loha-cp"}, {"lokr_full", "lokr-full"},
                                                          {"lokr", "lokr"},       {"lokr_both", "lokr-cp"},   {"locon_cp", "locon-cp"},
                                                          {"dora", "lora+dora"}};
  auto weight_of = [&](const std::string& module) {
    for (const auto& p : model.unet->named_parameters())
      if (p.key() == module + ".weight") return p.value();
    return torch::Tensor();
  };
  auto check = [&](double strength, const std::string& suffix) {
    sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
    EXPECT_EQ(merger.merge(lora, strength).unet_modules, 7);
    for (const auto& c : cases) {
      const std::string name = c[0], target = c[1];
      EXPECT_EQ(types[target], expected_types.at(name)) << name;
      const auto& original = refs.at(name + ".original");  // the changes compared, not the weights that carry them
      EXPECT_LT(relative_error(weight_of(target) - original, refs.at(name + suffix) - original), 1e-5) << name << suffix;
    }
    merger.unmerge();
    for (const auto& c : cases) EXPECT_TRUE(torch::equal(weight_of(c[1]), refs.at(c[0].get<std::string>() + ".original"))) << c[0];
  };
  check(1.0, ".merged_1");
  check(0.5, ".merged_0.5");
  // Written with kohya keys, the scales are folded into a factor of each module (alpha = rank): same weights.
  sdtune::lora::write_lora(lora, dir.file("folded.safetensors"), sdtune::lora::LoraFormat::Kohya);
  lora = sdtune::lora::read_lora(dir.file("folded.safetensors"));
  for (const auto& m : lora.modules) EXPECT_EQ(m.scale(), 1.0) << m.key_prefix;
  check(1.0, ".merged_1");
  check(0.5, ".merged_0.5");
}

}  // namespace

namespace {

// peft's LoHa and LoKr layers give the same weight change, except for a LoKr of two full matrices:
// peft scales it by alpha / r, A1111, ComfyUI and LyCORIS by 1, which sdtune follows.
TEST(Lycoris, PeftLohaAndLokrDeltasAndTheFullMatrixScale) {
  sdtune::io::ModelFiles folder(data_path("tiny-sd1/pipeline"));
  auto model = sdtune::pipeline::load_stable_diffusion(folder, {});
  const auto refs = sdtune::io::read_all_tensors(data_path("lycoris/references.safetensors"));
  const auto cases = sdtune::io::Json::parse(sdtune::io::SafetensorsFile(data_path("lycoris/references.safetensors")).metadata().at("peft_cases"));
  sdtune::lora::LoraMerger merger(*model.unet, *model.text_encoder);
  EXPECT_EQ(merger.merge(sdtune::lora::read_lora(data_path("lycoris/peft.safetensors")), 1.0).unet_modules, 3);
  for (const auto& c : cases) {
    const std::string name = c[0], target = c[1];
    torch::Tensor weight;
    for (const auto& p : model.unet->named_parameters())
      if (p.key() == target + ".weight") weight = p.value();
    const double peft_scale_apart = name == "peft_lokr_full" ? 16.0 / 3.0 : 1.0;  // r / alpha
    EXPECT_LT(relative_error(weight - refs.at(name + ".original"), refs.at(name + ".delta") * peft_scale_apart), 1e-4) << name;
  }
}

}  // namespace
