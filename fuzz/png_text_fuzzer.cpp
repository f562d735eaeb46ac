// PNG text chunks (tEXt, zTXt, iTXt) as `sdtune info` reads the A1111 "parameters" of an image.
#include "fuzz_support.h"
#include "io/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const std::string path = fuzz::write_scratch_file("image.png", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] { io::read_png_text(path); });
  return 0;
}
