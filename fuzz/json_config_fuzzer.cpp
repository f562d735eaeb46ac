// The JSON files of a model folder: the first byte picks the reader, the rest is the file. A component
// config that reads must also give a weight signature (UNet, VAE, text encoder) or a scheduler that
// can prepare a few steps, as loading a model does next; model_index.json and a sharded component's
// *.safetensors.index.json are read as ModelFolder reads them.
#include <ATen/ATen.h>

#include <cstdio>

#include "fuzz_support.h"
#include "io/adapter_config.h"
#include "io/json_file.h"
#include "io/model_folder.h"
#include "models/clip_text.h"
#include "models/unet/unet_config.h"
#include "models/vae/autoencoder_kl.h"
#include "schedulers/scheduler.h"

namespace {

using namespace sdtune;

enum Reader : uint8_t { kUNet, kVae, kTextEncoder, kScheduler, kAdapter, kModelIndex, kShardIndex, kReaderCount };

// Where each reader finds its file, relative to the scratch folder.
const char* file_name(Reader reader) {
  switch (reader) {
    case kAdapter: return "adapter_config.json";
    case kModelIndex: return "model/model_index.json";
    case kShardIndex: return "model/unet/diffusion_pytorch_model.safetensors.index.json";
    default: return "config.json";
  }
}

void read_config(Reader reader, const std::string& path, uint8_t steps) {
  switch (reader) {
    case kAdapter: io::read_adapter_config(fuzz::scratch_dir()); return;  // found beside LoRA weights by folder
    case kModelIndex: io::ModelFolder(fuzz::scratch_dir() + "/model").model_index().size(); return;
    case kShardIndex: io::ModelFolder(fuzz::scratch_dir() + "/model").weight_files("unet"); return;
    default: break;
  }
  const io::Json config = io::read_json_file(path);
  switch (reader) {
    case kUNet: models::UNetConfig::from_json(config, path).weight_signature(); break;
    case kVae: models::VaeConfig::from_json(config, path).weight_signature(); break;
    case kTextEncoder: models::ClipTextConfig::from_json(config, path).weight_signature(); break;
    default: {
      auto scheduler = schedulers::make_scheduler("", config, {}, path);
      scheduler->set_timesteps(1 + steps % 50);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto reader = Reader(data[0] % kReaderCount);
  const uint8_t steps = data[1];
  static const bool folders_made = fuzz::make_scratch_dirs("model/unet");
  (void)folders_made;
  for (const Reader other : {kModelIndex, kShardIndex})  // each file only where its reader looks
    if (other != reader) std::remove((fuzz::scratch_dir() + "/" + file_name(other)).c_str());
  const std::string path = fuzz::write_scratch_file(file_name(reader), {reinterpret_cast<const char*>(data) + 2, size - 2});
  fuzz::expect_success_or_error([&] { read_config(reader, path, steps); });
  return 0;
}
