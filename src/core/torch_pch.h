// Precompiled header for every LibTorch-using translation unit (parsed once, ~25 s; then ~3 s a file).
#pragma once
#include <torch/torch.h>
