// sdtune dev ...: developer tools (random full-size models for timing without downloads).
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "dev/random_model.h"
#include "io/model_families.h"

namespace sdtune::cli {

namespace {

struct MakeModelFlags {
  std::string preset;
  std::string dtype = "fp16";
  uint64_t seed = 0;
  std::string output;
};

void make_model(const MakeModelFlags& flags) {
  dev::RandomModelOptions options;
  options.preset = flags.preset;
  options.dtype = flags.dtype == "fp32" ? at::kFloat : at::kHalf;
  options.seed = flags.seed;
  options.output = flags.output;
  const auto report = dev::write_random_model(options);
  std::cout << "wrote " << flags.output << " (" << flags.preset << ", random weights, " << flags.dtype << "): UNet "
            << report.unet_parameters << " parameters, text encoder " << report.text_encoder_parameters << ", VAE "
            << report.vae_parameters << "\n";
}

}  // namespace

void add_dev_command(CLI::App& app) {
  CLI::App* dev = app.add_subcommand("dev", "developer tools");
  dev->require_subcommand(1);
  auto flags = std::make_shared<MakeModelFlags>();
  CLI::App* make = dev->add_subcommand("make-model", "write a model with random weights in the real SD shapes");
  make->add_option("--preset", flags->preset, "sd2 (768-v, v-prediction), sd2-base (512, epsilon), sd15, sd15-inpainting or sd2-inpainting")
      ->required()
      ->check(CLI::IsMember(io::model_family_names()));
  make->add_option("--dtype", flags->dtype, "weight dtype in the files")->check(CLI::IsMember({"fp16", "fp32"}))->capture_default_str();
  make->add_option("--seed", flags->seed, "seed of the random weights")->capture_default_str();
  make->add_option("--output", flags->output, "folder to create, or a .safetensors file: one single-file (LDM layout) checkpoint")->required();
  make->callback([flags] { make_model(*flags); });
}

}  // namespace sdtune::cli
