#include "kernels/onednn_linear.h"

#include <ATen/ATen.h>

#if SDTUNE_WITH_ONEDNN
#include "kernels/onednn_engine.h"
#endif

namespace sdtune::kernels {

#if SDTUNE_WITH_ONEDNN

namespace {

// input [..., K] @ B + bias, where B [K, N] is `weight` read in place: its transpose when the weight
// is stored [N, K] (the forward product), itself when stored [K, N] (the input gradient).
at::Tensor matmul(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias, bool weight_transposed) {
  if (weight.dim() != 2) return {};
  const auto f32 = at::kFloat;
  const int64_t k = weight_transposed ? weight.size(1) : weight.size(0);
  const int64_t n = weight_transposed ? weight.size(0) : weight.size(1);
  if (input.dim() < 1 || !input.device().is_cpu() || !weight.device().is_cpu() || input.scalar_type() != f32 ||
      weight.scalar_type() != f32 || (bias.defined() && bias.scalar_type() != f32) || input.size(-1) != k ||
      !weight.is_contiguous() || input.numel() == 0)
    return {};
  const int64_t rows = input.numel() / k;
  using dnnl::memory;
  using Tag = memory::format_tag;
  const auto dt = memory::data_type::f32;
  const memory::desc src({rows, k}, dt, Tag::ab), weights({k, n}, dt, weight_transposed ? Tag::ba : Tag::ab);
  const memory::desc dst({rows, n}, dt, Tag::ab), bias_desc({1, n}, dt, Tag::ab);
  dnnl::matmul::primitive_desc pd;
  try {
    // Primitives are reused through oneDNN's own primitive cache (keyed by these shapes).
    pd = bias.defined() ? dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias_desc, dst), cpu_engine())
                        : dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), cpu_engine());
  } catch (const dnnl::error &) {
    return {};
  }
  const at::Tensor x = input.contiguous();
  std::vector<int64_t> out_sizes = input.sizes().vec();
  out_sizes.back() = n;
  at::Tensor y = at::empty(out_sizes, x.options());
  dnnl::stream stream(cpu_engine());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(src, cpu_engine(), x.data_ptr())},
                                       {DNNL_ARG_WEIGHTS, memory(weights, cpu_engine(), weight.data_ptr())},
                                       {DNNL_ARG_DST, memory(dst, cpu_engine(), y.data_ptr())}};
  at::Tensor b;
  if (bias.defined()) {
    b = bias.contiguous();
    args[DNNL_ARG_BIAS] = memory(bias_desc, cpu_engine(), b.data_ptr());
  }
  dnnl::matmul(pd).execute(stream, args);
  stream.wait();
  return y;
}

}  // namespace

at::Tensor onednn_linear(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias) {
  return matmul(input, weight, bias, /*weight_transposed=*/true);
}

at::Tensor onednn_linear_input_grad(const at::Tensor &output_grad, const at::Tensor &weight) {
  return matmul(output_grad, weight, {}, /*weight_transposed=*/false);
}

#else  // built without oneDNN: every call declines

at::Tensor onednn_linear(const at::Tensor &, const at::Tensor &, const at::Tensor &) { return {}; }
at::Tensor onednn_linear_input_grad(const at::Tensor &, const at::Tensor &) { return {}; }

#endif

}  // namespace sdtune::kernels
