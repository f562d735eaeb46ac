#include "text/unicode_text.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include <memory>

#include "core/error.h"

namespace sdtune::text {

void check_utf8(const std::string& utf8, const std::string& where) {
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = 0;
  u_strFromUTF8(nullptr, 0, &length, utf8.data(), int32_t(utf8.size()), &status);
  if (status == U_INVALID_CHAR_FOUND || status == U_ILLEGAL_CHAR_FOUND)
    throw Error(where, "text is not valid UTF-8");
}

static bool is_whitespace(UChar32 c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(c) == U_SPACE_SEPARATOR;
}

// Python's unicodedata category starting with "C" (Cc, Cf, Cs, Co, Cn), except \t \n \r.
static bool is_control(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  switch (u_charType(c)) {
    case U_CONTROL_CHAR: case U_FORMAT_CHAR: case U_SURROGATE: case U_PRIVATE_USE_CHAR: case U_UNASSIGNED:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideograph blocks BERT's tokenizer isolates (not Hiragana/Katakana/Hangul).
static bool is_cjk_ideograph(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::string clip_clean_text(const std::string& utf8) {
  const icu::UnicodeString input = icu::UnicodeString::fromUTF8(utf8);
  icu::UnicodeString cleaned;
  for (int32_t i = 0; i < input.length(); i = input.moveIndex32(i, 1)) {
    const UChar32 c = input.char32At(i);
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned.append(UChar32(' '));
    } else if (is_cjk_ideograph(c)) {
      cleaned.append(UChar32(' ')).append(c).append(UChar32(' '));
    } else {
      cleaned.append(c);
    }
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  icu::UnicodeString normalized = nfc->normalize(cleaned, status);
  if (U_FAILURE(status)) throw Error("", std::string("Unicode normalisation failed: ") + u_errorName(status));

  // Split on Unicode whitespace (Python's str.split) and lower-case each word.
  std::string out;
  int32_t i = 0;
  const int32_t n = normalized.length();
  while (i < n) {
    while (i < n && u_isUWhiteSpace(normalized.char32At(i))) i = normalized.moveIndex32(i, 1);
    int32_t start = i;
    while (i < n && !u_isUWhiteSpace(normalized.char32At(i))) i = normalized.moveIndex32(i, 1);
    if (i == start) break;
    icu::UnicodeString word = normalized.tempSubStringBetween(start, i);
    word.toLower(icu::Locale::getRoot());
    if (!out.empty()) out += ' ';
    word.toUTF8String(out);
  }
  return out;
}

std::vector<std::string> clip_split_words(const std::string& cleaned_utf8) {
  static const char* kPattern =
      R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
  UErrorCode status = U_ZERO_ERROR;
  // RegexPattern is immutable and thread-safe; a matcher is made per call.
  static const std::unique_ptr<icu::RegexPattern> pattern(
      icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(kPattern), UREGEX_CASE_INSENSITIVE, status));
  if (!pattern) throw Error("", "cannot compile the CLIP pre-tokenizer pattern");
  const icu::UnicodeString text = icu::UnicodeString::fromUTF8(cleaned_utf8);
  status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(pattern->matcher(text, status));
  std::vector<std::string> words;
  while (matcher->find(status) && U_SUCCESS(status)) {
    std::string word;
    matcher->group(status).toUTF8String(word);
    words.push_back(std::move(word));
  }
  return words;
}

}  // namespace sdtune::text
