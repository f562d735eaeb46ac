// PIL's decompression-bomb rule for every image decoder: a few KB of PNG or JPEG can claim to be a
// gigapixel image. Above max_image_pixels() an image is worth a warning (the dataset check gives
// it); above twice that it is refused from its header, before any pixel is decoded.
#pragma once
#include <cstdint>
#include <string>

namespace sdtune::io {

constexpr int64_t kDefaultMaxImagePixels = 89478485;  // PIL's Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3

// Process-wide, as PIL's Image.MAX_IMAGE_PIXELS: set by --max_image_pixels (the server uses the same).
void set_max_image_pixels(int64_t pixels);
int64_t max_image_pixels();

// Throws Error(path, ...) for a width or height below 1, or more than 2 * max_image_pixels() pixels.
void check_image_size(int64_t width, int64_t height, const std::string& path);

}  // namespace sdtune::io
