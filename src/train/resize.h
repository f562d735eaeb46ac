// Antialiased image resizing like PIL's Image.resize: a separable filter whose support widens with
// the downscale factor (lanczos a=3, bicubic a=-0.5, bilinear, or nearest).
#pragma once
#include <string>
#include <vector>

#include "io/png.h"

namespace sdtune::train {

enum class Interpolation { Lanczos, Bicubic, Bilinear, Nearest };

// "lanczos" | "bicubic" | "bilinear" | "nearest"; an Error names `flag` otherwise.
Interpolation parse_interpolation(const std::string& name, const std::string& flag);

// Resized RGB as floats in [0, 255] (no rounding, so no extra quantisation before training).
struct FloatImage {
  int64_t width = 0, height = 0;
  std::vector<float> pixels;  // height * width * 3
};
FloatImage resize(const io::RgbImage& image, int64_t width, int64_t height, Interpolation mode);

}  // namespace sdtune::train
