// Turning generated image tensors into 8-bit pictures, as diffusers' numpy_to_pil does.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "io/png.h"

namespace sdtune::pipeline {

// [N, 3, H, W] floats in [0, 1] -> round(x * 255) RGB images.
std::vector<io::RgbImage> to_rgb8(const at::Tensor& images);

}  // namespace sdtune::pipeline
