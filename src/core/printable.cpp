#include "core/printable.h"

#include <cstdio>

namespace sdtune {

namespace {

// Length of the valid UTF-8 sequence at `at` (1..4), or 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view s, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(at);
  size_t length = 0;
  uint32_t code = 0;
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) length = 2, code = lead & 0x1F;
  else if ((lead >> 4) == 0xE) length = 3, code = lead & 0x0F;
  else if ((lead >> 3) == 0x1E) length = 4, code = lead & 0x07;
  else return 0;
  if (at + length > s.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(at + i) >> 6) != 0x2) return 0;
    code = (code << 6) | (byte(at + i) & 0x3F);
  }
  static const uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;  // overlong, surrogate
  return length;
}

std::string hex_escape(const char* format, unsigned value) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

}  // namespace

std::string printable(std::string_view text, const PrintableOptions& options) {
  const size_t limit = options.max_bytes == 0 || options.max_bytes > text.size() ? text.size() : options.max_bytes;
  std::string out;
  out.reserve(limit + 16);
  size_t i = 0;
  while (i < limit) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += hex_escape("\\x%02x", c);
      ++i;
    } else if (length == 1 && (c < 0x20 || c == 0x7F)) {
      if (c == '\n' && options.keep_newlines) out += '\n';
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else out += hex_escape("\\x%02x", c);
      ++i;
    } else if (length == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      out += hex_escape("\\u%04x", static_cast<unsigned char>(text[i + 1]));  // C1 controls: U+0080..U+009F (CSI is U+009B)
      i += 2;
    } else {
      if (i + length > limit) break;  // never cut a character in half
      out.append(text.substr(i, length));
      i += length;
    }
  }
  if (i < text.size()) out += "... (" + std::to_string(text.size() - i) + " more bytes)";
  return out;
}

std::string in_quotes(std::string_view text, size_t max_bytes) {
  PrintableOptions options;
  options.max_bytes = max_bytes;
  return "\"" + printable(text, options) + "\"";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
  return s + "]";
}

}  // namespace sdtune
