// Each subcommand registers its flags and its action on the main app.
#pragma once
#include <CLI/CLI.hpp>

namespace sdtune::cli {

void add_tokenize_command(CLI::App& app);
void add_encode_prompt_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_dev_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_lora_command(CLI::App& app);
void add_dataset_command(CLI::App& app);
void add_train_command(CLI::App& app);

}  // namespace sdtune::cli
