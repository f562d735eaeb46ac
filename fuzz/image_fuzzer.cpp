// Image decoding as training and img2img read images: the format from the first bytes (PNG, JPEG with
// its EXIF orientation, WebP), grey/alpha/palette/16-bit/CMYK to 8-bit RGB, the decompression-bomb
// limit (lowered here so that a run stays fast; the same code path as PIL's default).
#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "io/image_file.h"
#include "io/image_limits.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sdtune::io::set_max_image_pixels(1 << 20);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string path = fuzz::write_scratch_file("image", bytes);
  io::jpeg_exif_orientation(bytes);
  fuzz::expect_success_or_error([&] {
    const io::RgbImage image = io::read_image(path);
    if (image.width < 1 || image.height < 1 || image.pixels.size() != size_t(image.width * image.height * 3)) {
      std::fprintf(stderr, "decoded %lldx%lld with %zu bytes\n", (long long)image.width, (long long)image.height,
                   image.pixels.size());
      std::abort();
    }
  });
  return 0;
}
