#include "io/png.h"

#include <png.h>

#include <csetjmp>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/printable.h"
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

// libpng reads from memory: the bytes are read (and bounded) once, then checked before libpng sees them.
struct MemoryInput {
  const std::string* bytes;
  size_t position;
};

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* input = static_cast<MemoryInput*>(png_get_io_ptr(png));
  if (length > input->bytes->size() - input->position) png_error(png, "the file ends inside a chunk");
  std::memcpy(out, input->bytes->data() + input->position, length);
  input->position += length;
}

// Every chunk's declared length must fit in what the file holds: libpng allocates a text chunk's
// declared length before reading it (2 GB for a 200-byte file, found by fuzzing), whatever
// png_set_chunk_malloc_max says.
void check_chunk_lengths(const std::string& bytes, const std::string& path) {
  auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(bytes[at])) << 24 | uint32_t(uint8_t(bytes[at + 1])) << 16 |
           uint32_t(uint8_t(bytes[at + 2])) << 8 | uint32_t(uint8_t(bytes[at + 3]));
  };
  for (size_t at = 8; at + 8 <= bytes.size();) {
    const uint64_t length = be32(at);
    const std::string type = bytes.substr(at + 4, 4);
    if (length + 12 > bytes.size() - at)
      throw Error(path, "corrupt PNG: chunk " + in_quotes(type) + " declares " + std::to_string(length) +
                            " bytes, more than the file holds");
    if (type == "IEND") return;
    at += 12 + length;
  }
}

// Decodes a PNG with the given per-image callback between header and cleanup. libpng's errors longjmp
// back here past `body`'s frames, which C++ allows only when that skips no destructor: `body` must keep
// no object with one (a vector, a string) alive across a libpng call; its buffers belong to the caller.
template <typename F>
void with_png_reader(const std::string& bytes, const std::string& path, F&& body) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0)
    throw Error(path, "not a PNG file");
  check_chunk_lengths(bytes, path);
  MemoryInput input{&bytes, 8};
  ErrorState state;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) throw Error(path, "out of memory reading PNG");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path, "corrupt PNG: " + state.message);
  }
  png_set_read_fn(png, &input, read_from_memory);
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
    std::vector<png_text> chunks;  // before setjmp: a longjmp must not skip its destructor
    if (setjmp(png_jmpbuf(png))) {
      png_destroy_write_struct(&png, &info);
      throw Error(path, "PNG encoding failed: " + state.message);
    }
    png_set_write_fn(png, &out, write_to_stream, flush_stream);
    png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
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

RgbImage read_png(const std::string& path) { return decode_png(read_file(path, kMaxImageFileBytes, "image file"), path); }

RgbImage decode_png(const std::string& bytes, const std::string& path) {
  RgbImage image;
  std::vector<png_bytep> rows;
  with_png_reader(bytes, path, [&](png_structp png, png_infop info) {
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
    rows.resize(size_t(image.height));
    for (int64_t y = 0; y < image.height; ++y) rows[size_t(y)] = image.pixels.data() + y * image.width * 3;
    png_read_image(png, rows.data());
    png_read_end(png, info);
  });
  return image;
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::map<std::string, std::string> text;
  std::vector<uint8_t> row;
  const std::string bytes = read_file(path, kMaxImageFileBytes, "image file");
  with_png_reader(bytes, path, [&](png_structp png, png_infop info) {
    png_read_info(png, info);
    check_image_size(png_get_image_width(png, info), png_get_image_height(png, info), path);
    text = text_chunks(png, info);
    // Text may also follow the image data: skip the pixels and read the end chunks.
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    row.resize(png_get_rowbytes(png, info));
    for (int p = 0; p < passes; ++p)
      for (png_uint_32 y = 0; y < png_get_image_height(png, info); ++y) png_read_row(png, row.data(), nullptr);
    png_read_end(png, info);
    for (const auto& [k, v] : text_chunks(png, info)) text[k] = v;
  });
  return text;
}

}  // namespace sdtune::io
