#include "io/png.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image_limits.h"
#include "io/input_file.h"

namespace sdtune::io {

namespace {

// libpng reports errors by longjmp; keep its message so the Error can carry it.
struct ErrorState {
  std::string message;
};

void on_error(png_structp png, png_const_charp message) {
  static_cast<ErrorState*>(png_get_error_ptr(png))->message = message;
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void write_to_stream(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::ostream*>(png_get_io_ptr(png))->write(reinterpret_cast<const char*>(data), std::streamsize(length));
}
void flush_stream(png_structp png) { static_cast<std::ostream*>(png_get_io_ptr(png))->flush(); }

// Reads a PNG with the given per-image callback between header and cleanup.
template <typename F>
void with_png_reader(const std::string& path, F&& body) {
  InputFile input(path);
  std::unique_ptr<FILE, int (*)(FILE*)> file(::fdopen(input.fd(), "rb"), &std::fclose);
  if (!file) throw Error(path, "cannot open image");
  input.release();  // the FILE closes it now
  unsigned char signature[8];
  if (std::fread(signature, 1, 8, file.get()) != 8 || png_sig_cmp(signature, 0, 8) != 0) throw Error(path, "not a PNG file");
  ErrorState state;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) throw Error(path, "out of memory reading PNG");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path, "corrupt PNG: " + state.message);
  }
  png_init_io(png, file.get());
  png_set_sig_bytes(png, 8);
  // Bounds on what a small file can make libpng allocate: ancillary chunks (text, ICC profiles) of at
  // most 8 MB each after decompression, at most 256 of them. The pixel count is checked by the body.
  png_set_chunk_malloc_max(png, 8 << 20);
  png_set_chunk_cache_max(png, 256);
  try {
    body(png, info);
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  png_destroy_read_struct(&png, &info, nullptr);
}

std::map<std::string, std::string> text_chunks(png_structp png, png_infop info) {
  std::map<std::string, std::string> out;
  png_textp text = nullptr;
  int count = 0;
  png_get_text(png, info, &text, &count);
  for (int i = 0; i < count; ++i) out[text[i].key] = std::string(text[i].text, text[i].itxt_length ? text[i].itxt_length : text[i].text_length);
  return out;
}

}  // namespace

void write_png(const std::string& path, const RgbImage& image, const std::map<std::string, std::string>& text) {
  if (image.width <= 0 || image.height <= 0 || image.pixels.size() != size_t(image.width * image.height * 3))
    throw Error(path, "image buffer does not match its size");
  write_file_atomically(path, [&](std::ostream& out) {
    ErrorState state;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) throw Error(path, "out of memory writing PNG");
    if (setjmp(png_jmpbuf(png))) {
      png_destroy_write_struct(&png, &info);
      throw Error(path, "PNG encoding failed: " + state.message);
    }
    png_set_write_fn(png, &out, write_to_stream, flush_stream);
    png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    std::vector<png_text> chunks;
    for (const auto& [key, value] : text) {
      png_text t{};
      t.compression = PNG_ITXT_COMPRESSION_NONE;
      t.key = const_cast<char*>(key.c_str());
      t.text = const_cast<char*>(value.c_str());
      t.itxt_length = value.size();
      chunks.push_back(t);
    }
    if (!chunks.empty()) png_set_text(png, info, chunks.data(), int(chunks.size()));
    png_write_info(png, info);
    for (int64_t y = 0; y < image.height; ++y)
      png_write_row(png, const_cast<png_bytep>(image.pixels.data() + y * image.width * 3));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
  });
}

RgbImage read_png(const std::string& path) {
  RgbImage image;
  with_png_reader(path, [&](png_structp png, png_infop info) {
    png_read_info(png, info);
    check_image_size(png_get_image_width(png, info), png_get_image_height(png, info), path);
    png_set_expand(png);  // palette / low-bit grey / tRNS -> 8-bit
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_read_update_info(png, info);
    image.width = png_get_image_width(png, info);
    image.height = png_get_image_height(png, info);
    image.pixels.resize(size_t(image.width * image.height * 3));
    std::vector<png_bytep> rows(size_t(image.height));
    for (int64_t y = 0; y < image.height; ++y) rows[size_t(y)] = image.pixels.data() + y * image.width * 3;
    png_read_image(png, rows.data());
    png_read_end(png, info);
  });
  return image;
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::map<std::string, std::string> text;
  with_png_reader(path, [&](png_structp png, png_infop info) {
    png_read_info(png, info);
    check_image_size(png_get_image_width(png, info), png_get_image_height(png, info), path);
    text = text_chunks(png, info);
    // Text may also follow the image data: skip the pixels and read the end chunks.
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    std::vector<uint8_t> row(png_get_rowbytes(png, info));
    for (int p = 0; p < passes; ++p)
      for (png_uint_32 y = 0; y < png_get_image_height(png, info); ++y) png_read_row(png, row.data(), nullptr);
    png_read_end(png, info);
    for (const auto& [k, v] : text_chunks(png, info)) text[k] = v;
  });
  return text;
}

}  // namespace sdtune::io
