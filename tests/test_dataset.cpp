#include <gtest/gtest.h>
#include <jpeglib.h>
#include <webp/encode.h>

#include <fstream>

#include "core/error.h"
#include "io/image_file.h"
#include "test_util.h"
#include "train/dataset.h"

using sdtune::test::TempDir;

namespace {

// A w x h image with a red top-left block (a quarter of the shorter side; JPEG keeps its colour)
// and blue elsewhere, to follow orientation changes.
sdtune::io::RgbImage marked_image(int64_t w, int64_t h) {
  sdtune::io::RgbImage image{w, h, std::vector<uint8_t>(size_t(w * h * 3), 0)};
  const int64_t block = std::max<int64_t>(1, std::min(w, h) / 4);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) image.pixels[size_t((y * w + x) * 3 + (x < block && y < block ? 0 : 2))] = 255;
  return image;
}

std::string encode_jpeg(const sdtune::io::RgbImage& image) {
  jpeg_compress_struct info{};
  jpeg_error_mgr errors{};
  info.err = jpeg_std_error(&errors);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = JDIMENSION(image.width);
  info.image_height = JDIMENSION(image.height);
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 100, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixels.data()) + size_t(info.next_scanline) * size_t(image.width) * 3;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::string out(reinterpret_cast<char*>(buffer), size);
  free(buffer);
  return out;
}

// Inserts an APP1 Exif segment with the given orientation after the SOI marker.
std::string with_exif_orientation(const std::string& jpeg, int orientation) {
  const std::string tiff = std::string("II*\0\x08\0\0\0", 8) + std::string("\x01\0", 2) +           // 1 entry
                           std::string("\x12\x01\x03\0\x01\0\0\0", 8) + std::string(1, char(orientation)) +
                           std::string("\0\0\0", 3) + std::string("\0\0\0\0", 4);
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const size_t length = payload.size() + 2;
  return jpeg.substr(0, 2) + "\xFF\xE1" + std::string(1, char(length >> 8)) + std::string(1, char(length & 0xFF)) + payload + jpeg.substr(2);
}

void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

TEST(ImageFile, PngJpegWebpAndExifOrientation) {
  TempDir dir;
  const auto image = marked_image(80, 64);
  sdtune::io::write_png(dir.file("a.png"), image);
  EXPECT_EQ(sdtune::io::read_image(dir.file("a.png")).pixels, image.pixels);

  write_file(dir.file("b.jpg"), with_exif_orientation(encode_jpeg(image), 6));  // rotate 90 clockwise to display
  const auto rotated = sdtune::io::read_image(dir.file("b.jpg"));
  EXPECT_EQ(rotated.width, 64);
  EXPECT_EQ(rotated.height, 80);
  // The red corner moves from top-left to top-right.
  const size_t top_right = size_t((rotated.width - 1) * 3);
  EXPECT_GT(rotated.pixels[top_right], 150);
  EXPECT_LT(rotated.pixels[0], 100);

  uint8_t* webp = nullptr;
  const size_t webp_size = WebPEncodeLosslessRGB(image.pixels.data(), int(image.width), int(image.height), int(image.width * 3), &webp);
  write_file(dir.file("c.webp"), std::string(reinterpret_cast<char*>(webp), webp_size));
  WebPFree(webp);
  EXPECT_EQ(sdtune::io::read_image(dir.file("c.webp")).pixels, image.pixels);

  write_file(dir.file("broken.jpg"), encode_jpeg(image).substr(0, 200));
  EXPECT_THROW(sdtune::io::read_image(dir.file("broken.jpg")), sdtune::Error);
  write_file(dir.file("text.png"), "hello");
  EXPECT_THROW(sdtune::io::read_image(dir.file("text.png")), sdtune::Error);
  EXPECT_THROW(sdtune::io::read_image(dir.file("absent.png")), sdtune::Error);
}

TEST(ImageFile, EveryExifOrientationIsAPermutation) {
  const auto image = marked_image(3, 2);
  for (int o = 1; o <= 8; ++o) {
    const auto out = sdtune::io::apply_exif_orientation(image, o);
    EXPECT_EQ(out.width * out.height, 6) << o;
    EXPECT_EQ(std::count(out.pixels.begin(), out.pixels.end(), 255), std::count(image.pixels.begin(), image.pixels.end(), 255)) << o;
  }
}

TEST(Dataset, MetadataJsonlWithEveryKindOfProblem) {
  TempDir dir;
  for (const char* name : {"a.png", "b.png", "c.png"}) sdtune::io::write_png(dir.file(name), marked_image(128, 96));
  sdtune::io::write_png(dir.file("tiny.png"), marked_image(16, 16));
  write_file(dir.file("bad.png"), "not an image");
  write_file(dir.file("metadata.jsonl"),
             "{\"file_name\": \"a.png\", \"prompt\": \"(lora-misato-token) smiling\"}\n"
             "{\"file_name\": \"b.png\", \"prompt\": [\"one\", \"two (lora-misato-token)\"]}\n"
             "{\"file_name\": \"c.png\"\n"
             "{\"file_name\": \"missing.png\", \"prompt\": \"x\"}\n"
             "{\"file_name\": \"a.png\", \"prompt\": \"again\"}\n"
             "{\"file_name\": \"c.png\"}\n"
             "{\"file_name\": \"tiny.png\", \"prompt\": \"small\"}\n"
             "{\"file_name\": \"bad.png\", \"prompt\": \"broken\"}\n"
             "\n"
             "{\"file_name\": \"../escape.png\", \"prompt\": \"x\"}\n");
  auto d = sdtune::train::read_dataset(dir.path.string(), {"prompt", "image"});
  EXPECT_EQ(d.layout, "metadata.jsonl");
  ASSERT_EQ(d.items.size(), 4u);  // a, b, tiny, bad
  EXPECT_EQ(d.items[1].captions.size(), 2u);
  sdtune::train::CheckOptions options;
  options.resolution = 256;  // "tiny" below 64 px, a warning below 256
  options.trigger_word = "(lora-misato-token)";
  const auto summary = sdtune::train::check_dataset(d, options);
  std::string report;
  for (const auto& p : d.problems) report += p.where + ": " + p.problem + "\n";
  for (const char* expected : {"metadata.jsonl line 3: broken JSON", "metadata.jsonl line 4: missing image", "line 5: duplicate file name \"a.png\"",
                               "line 6: missing caption", "line 10: file_name \"../escape.png\"", "tiny.png: tiny image (16x16)",
                               "bad.png: unreadable image", "a.png: shorter side 96 < resolution 256"})
    EXPECT_NE(report.find(expected), std::string::npos) << expected << "\n" << report;
  EXPECT_EQ(summary.errors, 7);
  EXPECT_EQ(summary.with_trigger, 2);
  EXPECT_TRUE(d.has_errors());
}

TEST(Dataset, CsvAndKohyaCaptionFiles) {
  TempDir csv;
  sdtune::io::write_png(csv.file("a.png"), marked_image(64, 64));
  sdtune::io::write_png(csv.file("b.png"), marked_image(64, 64));
  write_file(csv.file("metadata.csv"), "file_name,text\na.png,\"a castle, \"\"quoted\"\"\"\nb.png,plain\n");
  const auto d = sdtune::train::read_dataset(csv.path.string(), {});
  ASSERT_EQ(d.items.size(), 2u);
  EXPECT_EQ(d.items[0].captions[0], "a castle, \"quoted\"");
  EXPECT_FALSE(d.has_errors());

  TempDir kohya;
  sdtune::io::write_png(kohya.file("x.png"), marked_image(64, 64));
  write_file(kohya.file("x.txt"), "misato, smiling\n");
  sdtune::io::write_png(kohya.file("y.png"), marked_image(64, 64));
  const auto k = sdtune::train::read_dataset(kohya.path.string(), {});
  EXPECT_EQ(k.layout, "caption files");
  ASSERT_EQ(k.items.size(), 1u);
  EXPECT_EQ(k.items[0].captions[0], "misato, smiling");
  ASSERT_EQ(k.problems.size(), 1u);
  EXPECT_NE(k.problems[0].problem.find("missing caption file y.txt"), std::string::npos);
  EXPECT_THROW(sdtune::train::read_dataset(kohya.file("nope"), {}), sdtune::Error);
}

}  // namespace

#include "train/lr_schedule.h"
#include "train/resize.h"

namespace {

TEST(LrSchedule, CurvesOfDiffusersGetScheduler) {
  sdtune::train::LrSchedule s;
  s.base_lr = 1.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(s.learning_rate(0), 1.0);
  s.kind = "constant_with_warmup";
  EXPECT_DOUBLE_EQ(s.learning_rate(5), 0.5);
  EXPECT_DOUBLE_EQ(s.learning_rate(50), 1.0);
  s.kind = "linear";
  EXPECT_DOUBLE_EQ(s.learning_rate(60), 0.5);
  EXPECT_DOUBLE_EQ(s.learning_rate(110), 0.0);
  s.kind = "cosine";
  EXPECT_NEAR(s.learning_rate(60), 0.5, 1e-12);
  EXPECT_NEAR(s.learning_rate(10), 1.0, 1e-12);
  s.kind = "cosine_with_restarts";
  s.num_cycles = 2;
  EXPECT_NEAR(s.learning_rate(60), 1.0, 1e-12);  // second cycle starts at the half-way point
  s.kind = "polynomial";
  s.lr_end = 0.0;
  EXPECT_NEAR(s.learning_rate(60), 0.5, 1e-12);
  s.kind = "exponential";
  EXPECT_THROW(s.validate(), sdtune::Error);
}

TEST(Resize, ConstantImagesStayConstantAndNearestPicksPixels) {
  sdtune::io::RgbImage flat{40, 30, std::vector<uint8_t>(40 * 30 * 3, 77)};
  for (auto mode : {sdtune::train::Interpolation::Lanczos, sdtune::train::Interpolation::Bicubic, sdtune::train::Interpolation::Bilinear,
                    sdtune::train::Interpolation::Nearest})
    for (auto [w, h] : {std::pair<int64_t, int64_t>{20, 15}, {80, 60}, {33, 17}}) {
      const auto out = sdtune::train::resize(flat, w, h, mode);
      ASSERT_EQ(out.pixels.size(), size_t(w * h * 3));
      for (float v : out.pixels) EXPECT_NEAR(v, 77.0f, 1e-3f);
    }
  // Halving a 2x2 checker with an antialiased filter averages it; nearest keeps one pixel value.
  sdtune::io::RgbImage checker{2, 2, {0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0}};
  EXPECT_NEAR(sdtune::train::resize(checker, 1, 1, sdtune::train::Interpolation::Bilinear).pixels[0], 127.5f, 1e-3f);
  const float nearest = sdtune::train::resize(checker, 1, 1, sdtune::train::Interpolation::Nearest).pixels[0];
  EXPECT_TRUE(nearest == 0.0f || nearest == 255.0f);
  EXPECT_THROW(sdtune::train::parse_interpolation("area", "--image_interpolation_mode"), sdtune::Error);
}

}  // namespace
