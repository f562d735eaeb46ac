#include "pipeline/image_output.h"

#include <torch/torch.h>

namespace sdtune::pipeline {

std::vector<io::RgbImage> to_rgb8(const at::Tensor& images) {
  const at::Tensor bytes = (images.to(torch::kFloat).cpu().clamp(0, 1) * 255).round().to(torch::kByte).permute({0, 2, 3, 1}).contiguous();
  std::vector<io::RgbImage> out;
  for (int64_t i = 0; i < bytes.size(0); ++i) {
    io::RgbImage image;
    image.height = bytes.size(1);
    image.width = bytes.size(2);
    const uint8_t* data = bytes[i].data_ptr<uint8_t>();
    image.pixels.assign(data, data + image.height * image.width * 3);
    out.push_back(std::move(image));
  }
  return out;
}

}  // namespace sdtune::pipeline
