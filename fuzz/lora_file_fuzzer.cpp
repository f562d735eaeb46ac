// LoRA files and their key mapping: a safetensors file read in every key format (diffusers, PEFT, old
// attention processors, kohya's flattened names), then merged into the SD 2 test model, strictly and
// with allow_partial, and unmerged: names resolve to modules, shapes are checked, the unmerge restores.
#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "io/model_files.h"
#include "lora/lora_file.h"
#include "lora/lora_merge.h"
#include "lora/module_names.h"
#include "pipeline/components.h"

namespace {

using namespace sdtune;

struct TestModel {
  models::UNet2DCondition unet{nullptr};
  models::ClipTextModel text_encoder{nullptr};
};

TestModel& test_model() {
  static TestModel model = [] {
    const io::ModelFiles folder(SDTUNE_TEST_DATA "/tiny-sd2/pipeline");
    TestModel m;
    m.unet = pipeline::load_unet(folder, {});
    m.text_encoder = pipeline::load_text_encoder(folder, {});
    return m;
  }();
  return model;
}

double weight_sum(torch::nn::Module& module) {
  double sum = 0;
  for (const at::Tensor& p : module.parameters()) sum += p.sum().item<double>();
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TestModel& model = test_model();
  static const double unet_sum = weight_sum(*model.unet), text_sum = weight_sum(*model.text_encoder);
  const std::string path = fuzz::write_scratch_file("lora.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] {
    const lora::LoraFile lora = lora::read_lora(path);
    for (const lora::LoraModule& m : lora.modules) lora::flatten_module_name(m.module);
    lora::LoraMerger merger(*model.unet, *model.text_encoder);
    fuzz::expect_success_or_error([&] { merger.merge(lora, 0.75, /*allow_partial=*/false); });
    merger.merge(lora, -0.5, /*allow_partial=*/true);
    merger.unmerge();
  });
  if (weight_sum(*model.unet) != unet_sum || weight_sum(*model.text_encoder) != text_sum) {
    std::fprintf(stderr, "the model's weights changed after merge + unmerge (or after a refused merge)\n");
    std::abort();
  }
  return 0;
}
