// Hostile bytes at the lowest level: what messages show of them, JSON that nests or lies about its
// types, files that are not files, and writes onto inputs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/image_file.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "test_util.h"

namespace {

using sdtune::io::Json;

using sdtune::test::error_of;

TEST(Printable, EscapesControlCharactersAndInvalidUtf8) {
  EXPECT_EQ(sdtune::printable("a\x1b[31mred\x07"), "a\\x1b[31mred\\x07");
  EXPECT_EQ(sdtune::printable("two\nlines\tand\r"), "two\\nlines\\tand\\r");
  EXPECT_EQ(sdtune::printable("two\nlines", {0, true}), "two\nlines");
  EXPECT_EQ(sdtune::printable("caf\xc3\xa9 \xe6\x97\xa5"), "caf\xc3\xa9 \xe6\x97\xa5");  // valid UTF-8 stays
  EXPECT_EQ(sdtune::printable("bad \xff\xc3"), "bad \\xff\\xc3");
  EXPECT_EQ(sdtune::printable("csi \xc2\x9b" "2J"), "csi \\u009b2J");  // C1 control: a terminal escape too
  EXPECT_EQ(sdtune::printable("\xc0\xaf"), "\\xc0\\xaf");              // overlong '/'
}

TEST(Printable, CutsLongTextAndSaysHowMuchWasLeft) {
  const std::string long_text(1 << 20, 'x');
  const std::string shown = sdtune::printable(long_text, {100});
  EXPECT_EQ(shown, std::string(100, 'x') + "... (1048476 more bytes)");
  EXPECT_EQ(sdtune::printable("\xe6\x97\xa5\xe6\x97\xa5", {4}), "\xe6\x97\xa5... (3 more bytes)");  // never half a character
  EXPECT_EQ(sdtune::in_quotes("k\"ey"), "\"k\"ey\"");
}

TEST(JsonHostile, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::string message = error_of([&] { sdtune::io::parse_json_text(deep, "config.json"); });
  EXPECT_EQ(message, "config.json: JSON nested deeper than 64 levels (at byte 64)");
  // Brackets inside strings are text, not nesting.
  EXPECT_NO_THROW(sdtune::io::parse_json_text("{\"a\": \"" + std::string(1000, '[') + "\"}", "x"));
}

TEST(JsonHostile, ParseErrorsHaveNoLibraryIdAndABoundedExcerpt) {
  const std::string text = "{\"a\": \"" + std::string(100000, 'y') + "\x01\"}";
  const std::string message = error_of([&] { sdtune::io::parse_json_text(text, "vocab.json"); });
  EXPECT_EQ(message.rfind("vocab.json: invalid JSON: parse error at line 1", 0), 0u) << message;
  EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
  EXPECT_LT(message.size(), 400u);
}

TEST(JsonHostile, ConfigValuesMustBeExactlyTheirType) {
  const Json config = sdtune::io::parse_json_text(
      R"({"layers": 2.5, "big": Infinity, "nan": NaN, "flag": 1, "name": 7, "ok": 3, "huge": 99999999999999999999,
          "list": [1, 2.0], "lambda": -Infinity, "long": ")" + std::string(5000, 'z') + R"("})",
      "unet/config.json");
  auto message = [&](auto f) { return error_of(f); };
  EXPECT_EQ(message([&] { sdtune::io::config_value<int64_t>(config, "layers", 1, "unet/config.json"); }),
            "unet/config.json: config key \"layers\" must be an integer, got 2.5");
  EXPECT_EQ(message([&] { sdtune::io::config_value<double>(config, "big", 1, "unet/config.json"); }),
            "unet/config.json: config key \"big\" must be a finite number, got Infinity");
  EXPECT_EQ(message([&] { sdtune::io::config_value<double>(config, "nan", 1, "unet/config.json"); }),
            "unet/config.json: config key \"nan\" must be a finite number, got NaN");
  EXPECT_EQ(message([&] { sdtune::io::config_value<bool>(config, "flag", false, "c"); }), "c: config key \"flag\" must be true or false, got 1");
  EXPECT_EQ(message([&] { sdtune::io::config_value<std::string>(config, "name", "", "c"); }), "c: config key \"name\" must be a string, got 7");
  EXPECT_EQ(message([&] { sdtune::io::config_value<int64_t>(config, "huge", 0, "c"); }),
            "c: config key \"huge\" must be an integer, got 1e+20");
  EXPECT_EQ(message([&] { sdtune::io::config_value<std::vector<int64_t>>(config, "list", {}, "c"); }),
            "c: config key \"list\" must be a list of values that are each an integer, got a list of 2 entries");
  EXPECT_EQ(message([&] { sdtune::io::config_value_in<int64_t>(config, "ok", 0, "c", 4, 8); }), "c: config key \"ok\" must be between 4 and 8, got 3");
  EXPECT_LT(message([&] { sdtune::io::config_value<int64_t>(config, "long", 0, "c"); }).size(), 200u);
  EXPECT_EQ(sdtune::io::config_value<int64_t>(config, "ok", 0, "c"), 3);
  EXPECT_EQ(message([&] { sdtune::io::parse_json_text(R"({"norm_eps": 1e309})", "c"); }), "c: invalid JSON: number overflow parsing '1e309'");
  EXPECT_EQ(sdtune::io::config_value<int64_t>(config, "absent", 5, "c"), 5);
  EXPECT_TRUE(std::isinf(sdtune::io::config_number_or_infinity(config, "lambda", 0, "c")));
  EXPECT_EQ(message([&] { sdtune::io::config_number_or_infinity(config, "nan", 0, "c"); }), "c: config key \"nan\" must be a number or -Infinity, got NaN");
}

TEST(InputFiles, OnlyRegularFilesAreOpened) {
  sdtune::test::TempDir dir;
  const std::string fifo = dir.file("pipe.json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO without a writer would block forever; it is refused at once.
  EXPECT_EQ(error_of([&] { sdtune::io::read_json_file(fifo); }), fifo + ": is a FIFO (named pipe), not a regular file; refusing to read it");
  EXPECT_EQ(error_of([&] { sdtune::io::read_file("/dev/zero", 100, "image"); }), "/dev/zero: is a device, not a regular file; refusing to read it");
  EXPECT_EQ(error_of([&] { sdtune::io::read_file(dir.path.string(), 100, "image"); }),
            dir.path.string() + ": is a folder, not a regular file; refusing to read it");
  EXPECT_EQ(error_of([&] { sdtune::io::read_file(dir.file("missing"), 100, "image"); }), dir.file("missing") + ": file not found");
  std::ofstream(dir.file("big.json")) << std::string(1000, ' ');
  EXPECT_EQ(error_of([&] { sdtune::io::read_file(dir.file("big.json"), 100, "JSON file"); }),
            dir.file("big.json") + ": JSON file of 1000 bytes is over the limit of 100 bytes");
}

TEST(InputFiles, NoWriteReplacesAFileThisRunRead) {
  sdtune::test::TempDir dir;
  const std::string input = dir.file("weights.safetensors"), link = dir.file("alias.safetensors");
  std::ofstream(input) << "original";
  std::filesystem::create_hard_link(input, link);
  auto write = [](const std::string& path, sdtune::io::OntoInput policy) {
    sdtune::io::write_file_atomically(path, [](std::ostream& out) { out << "new"; }, policy);
  };
  EXPECT_NO_THROW(write(dir.file("other.bin"), sdtune::io::OntoInput::Refuse));
  sdtune::io::read_file(input, 100, "file");
  EXPECT_EQ(error_of([&] { write(link, sdtune::io::OntoInput::Refuse); }),
            link + ": is a file this command reads; refusing to overwrite it (write the output somewhere else)");
  EXPECT_EQ(sdtune::io::read_file(input, 100, "file"), "original");
  EXPECT_NO_THROW(write(input, sdtune::io::OntoInput::Allow));
  EXPECT_EQ(sdtune::io::read_file(input, 100, "file"), "new");
}

}  // namespace

namespace {

// Largest per-pixel difference of our decode of `jpeg` from Pillow's RGB of the same file.
int worst_difference_from_pillow(const std::string& jpeg, const std::string& pillow_png) {
  const auto ours = sdtune::io::read_image(sdtune::test::data_path("images/" + jpeg));
  const auto pillow = sdtune::io::read_png(sdtune::test::data_path("images/" + pillow_png));
  EXPECT_EQ(ours.width, pillow.width);
  EXPECT_EQ(ours.height, pillow.height);
  if (ours.pixels.size() != pillow.pixels.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < ours.pixels.size(); ++i) worst = std::max(worst, std::abs(int(ours.pixels[i]) - int(pillow.pixels[i])));
  return worst;
}

// References made by Pillow 11.3 (scripts/make_image_fixtures.py): its libjpeg-turbo is not Debian's,
// so the IDCT may round differently: the 8-bit image tolerance, 2/255.
TEST(PillowImages, CmykAndRgbJpegsDecodeToPillowsPixels) {
  EXPECT_LE(worst_difference_from_pillow("cmyk.jpg", "cmyk_as_rgb.png"), 2);
  EXPECT_LE(worst_difference_from_pillow("rgb.jpg", "rgb_as_rgb.png"), 2);
}

TEST(PillowImages, ATruncatedJpegPillowRefusesIsRefused) {
  const std::string path = sdtune::test::data_path("images/rgb_truncated.jpg");
  EXPECT_EQ(error_of([&] { sdtune::io::read_image(path); }), path + ": corrupt JPEG: Premature end of JPEG file");
}

}  // namespace
