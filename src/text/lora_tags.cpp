#include "text/lora_tags.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace sdtune::text {

PromptWithLoras extract_lora_tags(const std::string& prompt) {
  PromptWithLoras out;
  size_t pos = 0;
  while (true) {
    const size_t open = prompt.find("<lora:", pos);
    if (open == std::string::npos) break;
    const size_t close = prompt.find('>', open);
    if (close == std::string::npos) throw Error("--prompt", "unterminated LoRA tag: " + prompt.substr(open));
    out.prompt += prompt.substr(pos, open - pos);
    const std::string body = prompt.substr(open + 6, close - open - 6);  // NAME[:WEIGHT]
    LoraTag tag;
    const size_t colon = body.rfind(':');
    tag.name = body.substr(0, colon);
    if (colon != std::string::npos) {
      const std::string weight = body.substr(colon + 1);
      char* end = nullptr;
      tag.weight = std::strtod(weight.c_str(), &end);
      if (weight.empty() || end != weight.c_str() + weight.size() || !std::isfinite(tag.weight))
        throw Error("--prompt", "LoRA tag <lora:" + body + "> has a weight that is not a finite number");
    }
    if (tag.name.empty()) throw Error("--prompt", "LoRA tag <lora:" + body + "> has no name");
    out.loras.push_back(tag);
    pos = close + 1;
  }
  out.prompt += prompt.substr(pos);
  return out;
}

}  // namespace sdtune::text
