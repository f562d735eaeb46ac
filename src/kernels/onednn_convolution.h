// 2-D convolution for inference on the CPU, run by oneDNN directly instead of
// through LibTorch.
//
// Why: LibTorch 1.13's aten::conv2d reorders the weights into oneDNN's blocked
// layout on every call and never picks Winograd. Calling oneDNN ourselves lets
//   - every convolution read the plain OIHW weights in place (no per-call
//   weight copy), and
//   - 3x3 convolutions over many pixels use Winograd F(4x4,3x3)/F(2x2,3x3), ~2x
//   fewer
//     multiplications, with the transformed weights packed once and kept (they
//     are 1.8-4x the size of the plain ones, so only layers with small weights
//     and large activations qualify).
// Without oneDNN (a build against another LibTorch), `run` always declines.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>

namespace sdtune::kernels {

struct ConvolutionShape {
  int64_t stride = 1;
  int64_t padding = 0;
};

// One convolution layer's plans (per input size) and its packed Winograd
// weights.
class OneDnnConvolution {
 public:
  OneDnnConvolution();
  ~OneDnnConvolution();
  OneDnnConvolution(const OneDnnConvolution &) = delete;
  OneDnnConvolution &operator=(const OneDnnConvolution &) = delete;

  // conv2d(input, weight, bias) for a contiguous-able fp32 CPU NCHW input; an
  // undefined tensor when oneDNN is not built in or cannot run this case (the
  // caller then uses aten::conv2d). `allow_packing`: Winograd may keep
  // transformed weights (they are repacked when the weight tensor changes:
  // another tensor, or an in-place update such as a LoRA merge).
  at::Tensor run(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias, ConvolutionShape shape,
                 bool allow_packing);

  // Drops the plans and packed weights (memory returns to the allocator).
  void release();

  // Whether the last `run` used Winograd (tests and benchmarks).
  bool used_winograd() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// True when this build calls oneDNN directly.
bool onednn_available();

}  // namespace sdtune::kernels
