#include "pipeline/infotext.h"

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

static std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string Infotext::format() const {
  std::ostringstream out;
  out << prompt;
  if (!negative_prompt.empty()) out << "\nNegative prompt: " << negative_prompt;
  out << "\nSteps: " << steps << ", Sampler: " << a1111_sampler_name(scheduler, karras) << ", CFG scale: " << number(guidance_scale)
      << ", Seed: " << seed << ", Size: " << width << "x" << height;
  if (!model.empty()) out << ", Model: " << model;
  if (batch_size > 1) out << ", Batch size: " << batch_size << ", Batch pos: " << batch_pos;
  if (clip_skip > 0) out << ", Clip skip: " << clip_skip + 1;
  if (eta > 0) out << ", Eta DDIM: " << number(eta);
  if (guidance_rescale > 0) out << ", Guidance rescale: " << number(guidance_rescale);
  if (!emphasis) out << ", Emphasis: None";
  if (!loras.empty()) {
    out << ", Lora: \"";
    for (size_t i = 0; i < loras.size(); ++i) out << (i ? ", " : "") << loras[i];
    out << "\"";
  }
  out << ", Version: sdtune";
  return out.str();
}

}  // namespace sdtune::pipeline
