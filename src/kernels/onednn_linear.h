// Linear layers with frozen weights on the CPU, run by oneDNN's matrix product
// directly instead of through LibTorch.
//
// Why: aten::linear goes to OpenBLAS's sgemm, which reaches 50-185 GFLOP/s on
// the UNet's shapes here (worst for the 320-wide layers); oneDNN's brgemm
// kernels reach 200-400 GFLOP/s on the same shapes, reading the plain [out, in]
// weights in place (no copy, no packing memory). Without oneDNN (a build
// against another LibTorch), the functions always decline.
#pragma once
#include <ATen/core/Tensor.h>

namespace sdtune::kernels {

// input [..., in] @ weight[out, in]^T + bias[out] for fp32 CPU tensors; an
// undefined tensor when oneDNN is not built in or cannot run this case (the
// caller then uses aten::linear).
at::Tensor onednn_linear(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias);

// The gradient of that product with respect to its input: output_grad [..., out]
// @ weight [out, in]; undefined when declined, as above.
at::Tensor onednn_linear_input_grad(const at::Tensor &output_grad, const at::Tensor &weight);

}  // namespace sdtune::kernels
