// Each subcommand registers its flags and its action on the main app.
#pragma once
#include <CLI/CLI.hpp>

namespace sdtune::cli {

// Thrown by a command that ends without an error but with a non-zero exit status (an interrupted
// training run exits with 130, as a shell does after Ctrl-C).
struct ExitStatus {
  int code;
};

void add_tokenize_command(CLI::App& app);
void add_encode_prompt_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_dev_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_lora_command(CLI::App& app);
void add_dataset_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_publish_command(CLI::App& app);

}  // namespace sdtune::cli
