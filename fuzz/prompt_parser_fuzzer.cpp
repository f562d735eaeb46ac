// A1111's emphasis syntax alone: (a), (a:1.3), [a], escapes, BREAK. Weights must stay finite.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "text/prompt_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const std::string prompt(reinterpret_cast<const char*>(data), size);
  fuzz::expect_success_or_error([&] {
    for (const text::WeightedText& piece : text::parse_prompt_weights(prompt)) {
      if (!std::isfinite(piece.weight)) {
        std::fprintf(stderr, "emphasis weight %g is not finite\n", piece.weight);
        std::abort();
      }
    }
  });
  return 0;
}
