#include "kernels/onednn_linear.h"

#include <ATen/ATen.h>

#if SDTUNE_WITH_ONEDNN
#include "kernels/onednn_engine.h"
#endif

namespace sdtune::kernels {

#if SDTUNE_WITH_ONEDNN

at::Tensor onednn_linear(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias) {
  const auto f32 = at::kFloat;
  if (input.dim() < 1 || weight.dim() != 2 || !input.device().is_cpu() || !weight.device().is_cpu() ||
      input.scalar_type() != f32 || weight.scalar_type() != f32 || (bias.defined() && bias.scalar_type() != f32) ||
      input.size(-1) != weight.size(1) || !weight.is_contiguous() || input.numel() == 0)
    return {};
  const int64_t in = weight.size(1), out = weight.size(0), rows = input.numel() / in;
  using dnnl::memory;
  using Tag = memory::format_tag;
  const auto dt = memory::data_type::f32;
  // The weight [out, in] read as its transpose [in, out] (tag ba): no copy.
  const memory::desc src({rows, in}, dt, Tag::ab), weights({in, out}, dt, Tag::ba), dst({rows, out}, dt, Tag::ab);
  const memory::desc bias_desc({1, out}, dt, Tag::ab);
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
  out_sizes.back() = out;
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

#else  // built without oneDNN: every call declines

at::Tensor onednn_linear(const at::Tensor &, const at::Tensor &, const at::Tensor &) { return {}; }

#endif

}  // namespace sdtune::kernels
