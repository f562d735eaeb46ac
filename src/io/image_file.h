// Decoding training images: PNG, JPEG (EXIF orientation applied) and WebP, always to 8-bit RGB
// (grey and alpha are converted). The format is taken from the file's first bytes, not its name.
#pragma once
#include <string>

#include "io/png.h"

namespace sdtune::io {

RgbImage read_image(const std::string& path);

// Rotates/flips `image` as EXIF orientation 1..8 says (1 = as stored).
RgbImage apply_exif_orientation(const RgbImage& image, int orientation);

// The EXIF orientation tag in a JPEG's APP1 segment, 1 when absent or unreadable.
int jpeg_exif_orientation(const std::string& bytes);

}  // namespace sdtune::io
