// sdtune lora info|convert|fuse: inspect LoRA files, change their key format, merge them into a model.
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "core/printable.h"
#include "cli/common_flags.h"
#include "io/model_files.h"
#include "lora/module_names.h"
#include "pipeline/lora_fuse.h"

namespace sdtune::cli {

namespace {

void info(const std::string& spec) {
  const auto file = lora::read_lora(spec);
  std::map<std::string, int64_t> per_component, per_type;
  std::set<int64_t> ranks;
  std::set<double> alphas;
  std::set<std::string> targets;
  int64_t parameters = 0;
  for (const auto& m : file.modules) {
    ++per_component[m.component == lora::Component::UNet ? "unet" : "text_encoder"];
    ++per_type[m.type_name()];
    ranks.insert(m.rank());
    alphas.insert(m.alpha.value_or(double(m.rank())));
    targets.insert(lora::target_name(m.module));
    for (const auto& t : {m.down, m.up, m.mid, m.dora_scale}) parameters += t.defined() ? t.numel() : 0;
    for (const auto& [key, t] : m.factors) parameters += t.numel();
  }
  auto join = [](const auto& values) {
    std::ostringstream s;
    for (auto it = values.begin(); it != values.end(); ++it) s << (it == values.begin() ? "" : ", ") << *it;
    return s.str();
  };
  std::cout << "file: " << file.path << "\nformat: " << file.format << "\nmodules:";
  for (const auto& [component, count] : per_component) std::cout << " " << component << " " << count;
  std::cout << "\ntypes:";
  for (const auto& [type, count] : per_type) std::cout << " " << type << " " << count;
  std::cout << "\nrank: " << join(ranks) << "\nalpha: " << join(alphas) << "\ntargets: " << join(targets)
            << "\nparameters: " << parameters << "\n";
  for (const auto& [key, value] : file.metadata) std::cout << "metadata " << printable(key) << ": " << printable(value, {4000}) << "\n";
  for (const auto& m : file.modules)
    std::cout << "module " << printable(m.key_prefix) << ": " << m.type_name() << ", rank " << m.rank() << ", scale " << m.scale() << "\n";
}

}  // namespace

void add_lora_command(CLI::App& app) {
  CLI::App* group = app.add_subcommand("lora", "inspect, convert and fuse LoRA files");
  group->require_subcommand(1);

  auto info_path = std::make_shared<std::string>();
  CLI::App* info_cmd = group->add_subcommand("info", "format, adapter types, ranks, alphas, target modules, parameters, metadata, and each module's type");
  info_cmd->add_option("file", *info_path, "LoRA file, folder or Hub id")->required();
  info_cmd->callback([info_path] { info(*info_path); });

  struct ConvertFlags {
    std::string input, output, format;
    bool overwrite = false;
  };
  auto convert = std::make_shared<ConvertFlags>();
  CLI::App* convert_cmd = group->add_subcommand("convert", "rewrite a LoRA with diffusers, PEFT or kohya (A1111/ComfyUI) keys");
  convert_cmd->add_option("input", convert->input, "LoRA file, folder or Hub id")->required();
  convert_cmd->add_option("output", convert->output, "output .safetensors")->required();
  convert_cmd->add_option("--format", convert->format, "diffusers, peft or kohya")->required()->check(CLI::IsMember({"diffusers", "peft", "kohya"}));
  convert_cmd->add_flag("--overwrite", convert->overwrite, "replace an existing output file (never the input)");
  convert_cmd->callback([convert] {
    refuse_existing_output(convert->output, convert->overwrite);
    const auto file = lora::read_lora(convert->input);
    lora::write_lora(file, convert->output, lora::parse_lora_format(convert->format));
    std::cout << "wrote " << convert->output << " (" << convert->format << ", " << file.modules.size() << " modules)\n";
  });

  struct FuseFlags {
    ModelFlags model;
    std::vector<std::string> loras;
    std::string output;
    bool allow_partial = false;
  };
  auto fuse = std::make_shared<FuseFlags>();
  CLI::App* fuse_cmd = group->add_subcommand("fuse", "write a full diffusers folder with LoRAs merged into its weights");
  fuse->model.add_to(fuse_cmd);
  fuse_cmd->add_option("--lora", fuse->loras, "LoRA file, folder or Hub id, optionally :WEIGHT (repeatable)")->required();
  fuse_cmd->add_option("--output", fuse->output, "new folder for the fused model")->required();
  fuse_cmd->add_flag("--lora_allow_partial", fuse->allow_partial, "skip LoRA modules that match nothing instead of failing");
  fuse_cmd->callback([fuse] {
    std::vector<std::pair<lora::LoraFile, double>> loras;
    for (const auto& flag : fuse->loras) {
      const auto [spec, weight] = lora::parse_lora_flag(flag);
      loras.emplace_back(lora::read_lora(spec), weight);
    }
    const auto reports = pipeline::fuse_loras(fuse->model.open(), loras, fuse->output, fuse->allow_partial, fuse->model.variant);
    for (size_t i = 0; i < reports.size(); ++i)
      std::cout << loras[i].first.path << ": " << reports[i].unet_modules << " UNet and " << reports[i].text_encoder_modules
                << " text-encoder modules merged\n";
    std::cout << "wrote " << fuse->output << "\n";
  });
}

}  // namespace sdtune::cli
