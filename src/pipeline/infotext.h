// The A1111 "parameters" text that generated PNGs carry, so that A1111, ComfyUI, civitai and
// `sdtune info` can show how an image was made.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdtune::pipeline {

struct Infotext {
  std::string prompt, negative_prompt;
  int64_t steps = 0;
  std::string scheduler;  // sdtune name: euler_a, dpmpp_2m, ...
  bool karras = false;
  double guidance_scale = 0, guidance_rescale = 0, eta = 0;
  uint64_t seed = 0;
  int64_t width = 0, height = 0;
  std::string model;
  int64_t clip_skip = 0;  // diffusers' clip_skip; A1111 writes it plus one
  bool emphasis = false;  // A1111 prompt weighting was on
  int64_t batch_size = 1, batch_pos = 0;
  // A1111's hashes (io/file_hash.h): the checkpoint's ("" for a diffusers folder, which A1111 cannot
  // load), and per LoRA / embedding its name as the prompt names it and its short hash.
  std::string model_hash;
  struct NamedHash {
    std::string name, hash;
  };
  std::vector<NamedHash> lora_hashes, ti_hashes;

  std::string format() const;
};

// "<lora:NAME:WEIGHT>", the tag A1111 reads back from a prompt (weight written as short as it reads back).
std::string lora_tag(const std::string& name, double weight);

// A1111's quote() of infotext values: as is, unless it holds ',', ':' or a newline; then a JSON string.
std::string a1111_quote(const std::string& value);

// A1111's sampler name for a scheduler ("euler_a" -> "Euler a").
std::string a1111_sampler_name(const std::string& scheduler, bool karras);

}  // namespace sdtune::pipeline
