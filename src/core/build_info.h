// What this binary was built with and what it sees: `sdtune --version`, and the first line a bug
// report or scripts/gpu-check needs.
#pragma once
#include <string>

namespace sdtune {

// e.g. "sdtune 0.2.0 (LibTorch 2.11.0, CUDA compiled in: 1 GPU visible, oneDNN kernels off)"
std::string build_description();

}  // namespace sdtune
