// A small synthetic training set for the training tests.
#pragma once
#include <fstream>
#include <string>

#include "io/png.h"
#include "test_util.h"

namespace sdtune::test {

// 8 colour-gradient images (48x40) with captions holding a trigger token, in diffusers' imagefolder layout.
inline void make_dataset(const TempDir& dir, int count = 8) {
  std::ofstream metadata(dir.file("metadata.jsonl"));
  for (int i = 0; i < count; ++i) {
    io::RgbImage image{48, 40, std::vector<uint8_t>(48 * 40 * 3)};
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 48; ++x) {
        uint8_t* p = &image.pixels[size_t((y * 48 + x) * 3)];
        p[0] = uint8_t((x * 5 + i * 30) % 256), p[1] = uint8_t((y * 6) % 256), p[2] = uint8_t(i * 31 % 256);
      }
    io::write_png(dir.file("img" + std::to_string(i) + ".png"), image);
    metadata << "{\"file_name\": \"img" << i << ".png\", \"text\": \"(lora-misato-token) picture " << i << "\"}\n";
  }
}

}  // namespace sdtune::test
