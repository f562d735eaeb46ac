// Unicode text clean-up that CLIP's tokenizer applies before BPE (ICU does the Unicode work).
#pragma once
#include <string>
#include <vector>

namespace sdtune::text {

// Throws Error(where, ...) unless `utf8` is valid UTF-8.
void check_utf8(const std::string& utf8, const std::string& where);

// transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False) as the slow CLIPTokenizer
// uses it without ftfy: drop NUL, U+FFFD and control/format characters, map whitespace to spaces, put
// spaces around CJK ideographs, NFC-normalise, split on whitespace, lower-case; words joined by one space.
std::string clip_clean_text(const std::string& utf8);

// CLIP's pre-tokenizer regex: 's 't 're 've 'm 'll 'd, runs of letters, single digits, runs of
// other non-space characters.
std::vector<std::string> clip_split_words(const std::string& cleaned_utf8);

}  // namespace sdtune::text
