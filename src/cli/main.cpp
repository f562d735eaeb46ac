// sdtune: Stable Diffusion LoRA training and generation. This file only dispatches subcommands and
// turns every failure into one clear message and a non-zero exit.
#include <CLI/CLI.hpp>
#include <iostream>
#include <set>
#include <string>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/error_message.h"
#include "core/printable.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  // Only the commands that run models pay for the re-execution (a second LibTorch start-up).
  static const std::set<std::string> compute_commands{"generate", "train", "encode-prompt", "lora"};
  if (argc > 1 && compute_commands.count(argv[1])) sdtune::use_passive_openmp_waiting(argv);
  CLI::App app{"sdtune: fine-tune Stable Diffusion with LoRA and generate images, natively", "sdtune"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "show help for every subcommand");
  // CLI11's own messages get the same one-line form as ours; subcommands copy this when added.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "error: " + sdtune::printable(e.what(), {2000}) + " (--help lists the flags)\n";
  });
  app.set_version_flag("--version", [] { return sdtune::build_description(); }, "LibTorch version, CUDA and GPUs seen, oneDNN kernels");
  sdtune::cli::add_generate_command(app);
  sdtune::cli::add_info_command(app);
  sdtune::cli::add_lora_command(app);
  sdtune::cli::add_dataset_command(app);
  sdtune::cli::add_train_command(app);
  sdtune::cli::add_publish_command(app);
  sdtune::cli::add_tokenize_command(app);
  sdtune::cli::add_encode_prompt_command(app);
  sdtune::cli::add_inspect_command(app);
  sdtune::cli::add_convert_command(app);
  sdtune::cli::add_dev_command(app);
  if (argc > 1 && argv[1][0] != '-') {
    try {
      app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      sdtune::print_error_line("unknown subcommand " + sdtune::in_quotes(argv[1]) + " (sdtune --help lists them)");
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sdtune::cli::ExitStatus& status) {
    return status.code;
  } catch (...) {
    sdtune::print_error_line(sdtune::describe_current_exception());
    return 1;
  }
  return 0;
}
