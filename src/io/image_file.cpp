#include "io/image_file.h"

#include <jpeglib.h>
// jerror.h needs jpeglib.h first: the warning codes (JWRN_JPEG_EOF).
#include <jerror.h>
#include <webp/decode.h>

#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/image_limits.h"
#include "io/input_file.h"

namespace sdtune::io {

namespace {

std::atomic<int64_t> max_pixels{kDefaultMaxImagePixels};

}  // namespace

void set_max_image_pixels(int64_t pixels) { max_pixels = pixels; }
int64_t max_image_pixels() { return max_pixels; }

void check_image_size(int64_t width, int64_t height, const std::string& path) {
  if (width < 1 || height < 1) throw Error(path, "image has no pixels (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  if (width * height > 2 * max_pixels)
    throw Error(path, std::to_string(width) + "x" + std::to_string(height) + " = " + std::to_string(width * height) +
                          " pixels is over the limit of " + std::to_string(2 * max_pixels) +
                          " (twice --max_image_pixels, as PIL refuses decompression bombs; raise --max_image_pixels if the image is real)");
}

namespace {

struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr info) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

// libjpeg only warns when the data ends early and fills the rest with grey; PIL refuses such a
// truncated file ("image file is truncated"), and so do we: grey stripes must not be trained on.
void on_jpeg_message(j_common_ptr info, int level) {
  if (level == -1 && info->err->msg_code == JWRN_JPEG_EOF) on_jpeg_error(info);
}

// PIL reads CMYK JPEGs with Adobe's inverted convention ("CMYK;I": C = 255 - stored C, K = 255 -
// stored K) and converts them as Pillow's cmyk2rgb does: R = (255 - K) - C * (255 - K) / 255, with its
// rounding (MULDIV255).
void cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, int64_t pixels) {
  auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (int64_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3) {
    const int not_k = cmyk[3];  // 255 - K = the stored value
    for (int c = 0; c < 3; ++c) rgb[c] = uint8_t(std::clamp(not_k - muldiv255(255 - cmyk[c], not_k), 0, 255));
  }
}

RgbImage decode_jpeg(const std::string& bytes, const std::string& path) {
  jpeg_decompress_struct info{};
  JpegErrorManager errors{};
  info.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = on_jpeg_error;
  errors.base.emit_message = on_jpeg_message;
  // Both before setjmp: libjpeg's errors longjmp back to it, which must skip no destructor.
  RgbImage image;
  std::vector<uint8_t> cmyk_row;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    throw Error(path, std::string("corrupt JPEG: ") + errors.message);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  try {
    check_image_size(info.image_width, info.image_height, path);
  } catch (...) {
    jpeg_destroy_decompress(&info);
    throw;
  }
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // grey and YCbCr are converted by libjpeg
  jpeg_start_decompress(&info);
  image.width = info.output_width;
  image.height = info.output_height;
  image.pixels.resize(size_t(image.width * image.height * 3));
  cmyk_row.resize(cmyk ? size_t(image.width) * 4 : 0);
  while (info.output_scanline < info.output_height) {
    uint8_t* rgb = image.pixels.data() + size_t(info.output_scanline) * size_t(image.width) * 3;
    JSAMPROW row = cmyk ? cmyk_row.data() : rgb;
    jpeg_read_scanlines(&info, &row, 1);
    if (cmyk) cmyk_to_rgb(cmyk_row.data(), rgb, image.width);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return image;
}

RgbImage decode_webp(const std::string& bytes, const std::string& path) {
  int width = 0, height = 0;
  if (!WebPGetInfo(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &width, &height))
    throw Error(path, "corrupt or unsupported WebP image");
  check_image_size(width, height, path);
  uint8_t* rgb = WebPDecodeRGB(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &width, &height);
  if (!rgb) throw Error(path, "corrupt or unsupported WebP image");
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(rgb, rgb + size_t(width) * size_t(height) * 3);
  WebPFree(rgb);
  return image;
}

}  // namespace

int jpeg_exif_orientation(const std::string& b) {
  // Walk the JPEG segments to APP1 "Exif\0\0", then the TIFF IFD0 for tag 0x0112.
  size_t pos = 2;
  while (pos + 4 <= b.size() && uint8_t(b[pos]) == 0xFF) {
    const uint8_t marker = uint8_t(b[pos + 1]);
    const size_t length = (size_t(uint8_t(b[pos + 2])) << 8) | uint8_t(b[pos + 3]);
    if (marker == 0xDA || length < 2) break;  // start of scan: no more metadata
    if (marker == 0xE1 && pos + 4 + length - 2 <= b.size() && b.compare(pos + 4, 6, std::string("Exif\0\0", 6)) == 0) {
      const size_t tiff = pos + 10;
      const size_t end = pos + 2 + length;
      if (tiff + 8 > end) return 1;
      const bool little = b[tiff] == 'I';
      auto u16 = [&](size_t at) -> uint32_t {
        if (at + 2 > end) return 0;
        return little ? (uint32_t(uint8_t(b[at])) | uint32_t(uint8_t(b[at + 1])) << 8) : (uint32_t(uint8_t(b[at])) << 8 | uint8_t(b[at + 1]));
      };
      auto u32 = [&](size_t at) -> uint32_t { return little ? (u16(at) | u16(at + 2) << 16) : (u16(at) << 16 | u16(at + 2)); };
      const size_t ifd = tiff + u32(tiff + 4);
      const uint32_t entries = u16(ifd);
      for (uint32_t e = 0; e < entries && e < 512; ++e) {
        const size_t entry = ifd + 2 + size_t(e) * 12;
        if (entry + 12 > end) break;
        if (u16(entry) == 0x0112) {
          const uint32_t value = u16(entry + 8);
          return value >= 1 && value <= 8 ? int(value) : 1;
        }
      }
      return 1;
    }
    pos += 2 + length;
  }
  return 1;
}

RgbImage apply_exif_orientation(const RgbImage& image, int orientation) {
  if (orientation <= 1 || orientation > 8) return image;
  const bool transpose = orientation >= 5;  // 5..8 swap width and height
  RgbImage out;
  out.width = transpose ? image.height : image.width;
  out.height = transpose ? image.width : image.height;
  out.pixels.resize(image.pixels.size());
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x) {
      // Source pixel of displayed (x, y) for each EXIF orientation.
      int64_t sx = x, sy = y;
      switch (orientation) {
        case 2: sx = image.width - 1 - x; break;
        case 3: sx = image.width - 1 - x, sy = image.height - 1 - y; break;
        case 4: sy = image.height - 1 - y; break;
        case 5: sx = y, sy = x; break;
        case 6: sx = y, sy = image.height - 1 - x; break;
        case 7: sx = image.width - 1 - y, sy = image.height - 1 - x; break;
        case 8: sx = image.width - 1 - y, sy = x; break;
      }
      std::memcpy(&out.pixels[size_t((y * out.width + x) * 3)], &image.pixels[size_t((sy * image.width + sx) * 3)], 3);
    }
  return out;
}

RgbImage read_image(const std::string& path) {
  const std::string bytes = read_file(path, kMaxImageFileBytes, "image file");
  if (bytes.size() >= 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) return decode_png(bytes, path);
  if (bytes.size() >= 3 && uint8_t(bytes[0]) == 0xFF && uint8_t(bytes[1]) == 0xD8 && uint8_t(bytes[2]) == 0xFF)
    return apply_exif_orientation(decode_jpeg(bytes, path), jpeg_exif_orientation(bytes));
  if (bytes.size() >= 12 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0) return decode_webp(bytes, path);
  throw Error(path, "not a PNG, JPEG or WebP image");
}

}  // namespace sdtune::io
