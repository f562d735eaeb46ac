// 8-bit RGB PNG files with text chunks (A1111 stores generation settings in a "parameters" chunk).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sdtune::io {

struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, row-major RGB
};

// Writes atomically; text values are UTF-8 (stored as iTXt so any language survives).
void write_png(const std::string& path, const RgbImage& image, const std::map<std::string, std::string>& text = {});

// Decodes any PNG (grey, palette, alpha, 16-bit) to 8-bit RGB; errors name the file.
RgbImage read_png(const std::string& path);
// The same for the bytes of a file already read (`path` names it in errors).
RgbImage decode_png(const std::string& bytes, const std::string& path);

// The tEXt/iTXt/zTXt chunks of a PNG.
std::map<std::string, std::string> read_png_text(const std::string& path);

}  // namespace sdtune::io
