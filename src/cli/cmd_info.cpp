// sdtune info: what a generated PNG says about how it was made.
#include <iostream>

#include "cli/commands.h"
#include "core/printable.h"
#include "io/png.h"

namespace sdtune::cli {

void add_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("info", "show the generation parameters stored in a PNG");
  sub->add_option("file", *path, "PNG file")->required();
  sub->callback([path] {
    const auto image = io::read_png(*path);
    const auto text = io::read_png_text(*path);
    std::cout << *path << ": " << image.width << "x" << image.height << "\n";
    if (text.empty()) std::cout << "(no text chunks: not made by sdtune, A1111 or ComfyUI?)\n";
    // Multi-line text stays multi-line; every other control character (an ESC from the file) is escaped.
    for (const auto& [key, value] : text) std::cout << printable(key) << ":\n" << printable(value, {0, true}) << "\n";
  });
}

}  // namespace sdtune::cli
