// A tokenizer folder as the program reads it (vocab.json, merges.txt, special_tokens_map.json,
// tokenizer_config.json; parts of the input in that order), then a text (the fifth part) tokenized,
// padded and decoded with it.
#include "fuzz_support.h"
#include "text/clip_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  static const char* kFiles[] = {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"};
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 5);
  for (int i = 0; i < 4; ++i) fuzz::write_scratch_file(kFiles[i], parts[i]);
  fuzz::expect_success_or_error([&] {
    const text::ClipTokenizer tokenizer(fuzz::scratch_dir());
    tokenizer.tokenize(parts[4]);
    tokenizer.decode(tokenizer.encode_padded(parts[4]));
  });
  return 0;
}
