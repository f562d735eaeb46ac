// sdtune inspect: list the tensors and metadata of a safetensors file (validating it on the way).
#include <iostream>

#include "cli/commands.h"
#include "core/printable.h"
#include "io/safetensors.h"

namespace sdtune::cli {

static void run(const std::string& path) {
  const io::SafetensorsFile file(path);
  uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    std::cout << printable(t.name) << "  " << io::dtype_name(t.dtype) << " [";
    for (size_t i = 0; i < t.shape.size(); ++i) std::cout << (i ? ", " : "") << t.shape[i];
    std::cout << "]\n";
    total += t.nbytes();
  }
  for (const auto& [key, value] : file.metadata()) std::cout << "metadata " << printable(key) << " = " << printable(value, {4000}) << "\n";
  std::cout << file.tensors().size() << " tensors, " << total << " bytes of data\n";
}

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("inspect", "list the tensors and metadata of a .safetensors file");
  sub->add_option("file", *path, "safetensors file")->required();
  sub->callback([path] { run(*path); });
}

}  // namespace sdtune::cli
