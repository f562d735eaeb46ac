// <lora:NAME:WEIGHT> tags in prompts: names and weights as A1111 and sd.cpp write them.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fuzz_support.h"
#include "text/lora_tags.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const std::string prompt(reinterpret_cast<const char*>(data), size);
  fuzz::expect_success_or_error([&] {
    const text::PromptWithLoras split = text::extract_lora_tags(prompt);
    for (const text::LoraTag& tag : split.loras) {
      if (tag.name.empty() || !std::isfinite(tag.weight)) {
        std::fprintf(stderr, "tag \"%s\" with weight %g\n", tag.name.c_str(), tag.weight);
        std::abort();
      }
    }
    if (split.prompt.size() > prompt.size()) std::abort();
  });
  return 0;
}
