// A model card as `publish --check` reads a repository folder's README.md: YAML front matter parsed by
// yaml-cpp, then the fields the Hub and load_lora_weights need. Problems are returned, never thrown.
#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "publish/publish.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  static const bool folder_made = fuzz::make_scratch_dirs("repo");
  (void)folder_made;
  fuzz::write_scratch_file("repo/README.md", {reinterpret_cast<const char*>(data), size});
  for (const std::string& problem : publish::check_published(fuzz::scratch_dir() + "/repo")) {
    if (problem.size() > fuzz::kMaxErrorMessageBytes) {
      std::fprintf(stderr, "problem of %zu bytes: %.300s\n", problem.size(), problem.c_str());
      std::abort();
    }
  }
  return 0;
}
