// The one place where the two LibTorch builds differ: Debian's 1.13 (CPU) and the 2.x wheels (CUDA).
// Code elsewhere asks these names, never TORCH_VERSION_* itself.
#pragma once
#include <ATen/ATen.h>
#include <torch/version.h>

#include <string>

namespace sdtune::compat {

// at::scaled_dot_product_attention is public from 2.0 (1.13 has only a private math-path op).
constexpr bool kHasFusedAttention = TORCH_VERSION_MAJOR >= 2;

// 1.13's bf16 matrix products and convolutions on the CPU take unoptimised fallbacks (measured: one SD 2
// UNet step at 256² 161 s against 3.4 s in fp32); 2.x runs them on oneDNN's bf16 kernels.
constexpr bool kFastCpuBf16 = TORCH_VERSION_MAJOR >= 2;

// softmax(q k^T / sqrt(d)) v through LibTorch's fused kernel; only called where kHasFusedAttention.
inline at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v);
#else
  TORCH_INTERNAL_ASSERT(false, "fused_attention needs LibTorch 2.x", q.sizes(), k.sizes(), v.sizes());
#endif
}

inline std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace sdtune::compat
