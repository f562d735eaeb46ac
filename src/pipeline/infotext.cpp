#include "pipeline/infotext.h"

#include <cstdlib>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

namespace sdtune::pipeline {

std::string a1111_sampler_name(const std::string& scheduler, bool karras) {
  static const std::pair<const char*, const char*> names[] = {
      {"ddim", "DDIM"}, {"pndm", "PLMS"},        {"euler", "Euler"}, {"euler_a", "Euler a"},
      {"lms", "LMS"},   {"dpmpp_2m", "DPM++ 2M"}, {"heun", "Heun"},   {"unipc", "UniPC"}};
  std::string name = scheduler;
  for (const auto& [ours, theirs] : names)
    if (scheduler == ours) name = theirs;
  return karras ? name + " Karras" : name;
}

// The shortest text that reads back as `v` (0.1, not 0.10000000000000001).
static std::string number(double v) {
  std::string text;
  for (int digits = 6; digits <= 17; ++digits) {
    std::ostringstream s;
    s << std::setprecision(digits) << v;
    text = s.str();
    if (std::strtod(text.c_str(), nullptr) == v) break;
  }
  return text;
}

std::string lora_tag(const std::string& name, double weight) { return "<lora:" + name + ":" + number(weight) + ">"; }

std::string a1111_quote(const std::string& value) {
  if (value.find_first_of(",:\n") == std::string::npos) return value;
  return nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Infotext::format() const {
  std::ostringstream out;
  out << prompt;
  if (!negative_prompt.empty()) out << "\nNegative prompt: " << negative_prompt;
  out << "\nSteps: " << steps << ", Sampler: " << a1111_sampler_name(scheduler, karras) << ", CFG scale: " << number(guidance_scale)
      << ", Seed: " << seed << ", Size: " << width << "x" << height;
  if (!model_hash.empty()) out << ", Model hash: " << model_hash.substr(0, 10);
  if (!model.empty()) out << ", Model: " << a1111_quote(model);
  if (batch_size > 1) out << ", Batch size: " << batch_size << ", Batch pos: " << batch_pos;
  if (clip_skip > 0) out << ", Clip skip: " << clip_skip + 1;
  if (eta > 0) out << ", Eta DDIM: " << number(eta);
  if (guidance_rescale > 0) out << ", Guidance rescale: " << number(guidance_rescale);
  // A1111 drops ':' and ',' from the names here, so that "name: hash, name: hash" stays one reading.
  for (const auto& [field, list] : {std::pair{"Lora hashes", &lora_hashes}, std::pair{"TI hashes", &ti_hashes}}) {
    std::string joined;
    for (const auto& [name, hash] : *list) {
      std::string clean;
      for (char c : name)
        if (c != ':' && c != ',') clean += c;
      joined += (joined.empty() ? "" : ", ") + clean + ": " + hash.substr(0, 12);
    }
    if (!joined.empty()) out << ", " << field << ": " << a1111_quote(joined);
  }
  if (!emphasis) out << ", Emphasis: None";
  out << ", Version: sdtune";
  return out.str();
}

}  // namespace sdtune::pipeline
