// sdtune convert: a model between a diffusers folder and one single-file (LDM layout) checkpoint.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/error.h"
#include "pipeline/model_export.h"

namespace fs = std::filesystem;

namespace sdtune::cli {

namespace {

struct ConvertFlags {
  ModelFlags model;
  std::string output;
  std::string dtype;
  bool overwrite = false;
};

void run(const ConvertFlags& f) {
  const bool to_file = fs::path(f.output).extension() == ".safetensors";
  std::error_code ec;
  if (to_file) refuse_existing_output(f.output, f.overwrite);
  else if (fs::exists(f.output, ec)) throw Error(f.output, "already exists; choose a new folder");
  c10::optional<at::ScalarType> dtype;
  if (!f.dtype.empty()) dtype = f.dtype == "fp16" ? at::kHalf : f.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  const io::ModelFiles files = f.model.open();
  pipeline::convert_model(files, f.output, dtype, f.model.variant);
  std::cout << "wrote " << f.output << " (" << (to_file ? "single-file checkpoint, LDM layout" : "diffusers folder") << ", "
            << (f.dtype.empty() ? "weights in their stored dtype" : f.dtype) << ")\n";
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto f = std::make_shared<ConvertFlags>();
  CLI::App* sub = app.add_subcommand("convert", "rewrite a model as a diffusers folder or a single-file checkpoint (LDM layout, as A1111/ComfyUI/sd.cpp load)");
  f->model.add_to(sub, "--model", {/*vae=*/true, /*prediction_type=*/true});
  sub->add_option("--output", f->output, "a new folder (diffusers layout), or a file ending in .safetensors (single file)")->required();
  sub->add_option("--dtype", f->dtype, "fp16, bf16 or fp32 (default: as the source stores them)")->check(CLI::IsMember({"fp16", "bf16", "fp32"}));
  sub->add_flag("--overwrite", f->overwrite, "replace an existing output file (never an input; folders never)");
  sub->callback([f] { run(*f); });
}

}  // namespace sdtune::cli
