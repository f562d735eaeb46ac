#include "kernels/onednn_convolution.h"

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <vector>

#if SDTUNE_WITH_ONEDNN
#include "kernels/onednn_engine.h"
#endif

namespace sdtune::kernels {

#if SDTUNE_WITH_ONEDNN

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

// Winograd pays where activations are large next to the weights: its
// input/output transforms cost per pixel, its packed weights 1.8-4x the plain
// ones for as long as the layer lives. On SD2 at 256² this selects the 320- and
// 640-channel levels (and the VAE), not the 1280-channel layers whose weights
// hold most of the UNet's memory.
bool winograd_worth_it(int64_t pixels, int64_t in_channels, int64_t out_channels, int64_t kernel, ConvolutionShape s) {
  return kernel == 3 && s.stride == 1 && s.padding == 1 && pixels >= 512 && in_channels * out_channels <= 1920 * 640;
}

constexpr size_t kWinogradScratchBytes = size_t(256) << 20;

struct Plan {
  dnnl::convolution_forward convolution;
  memory::desc src, weights, dst;  // the primitive's layouts (blocked for Winograd)
  memory::desc scratchpad;         // allocated per call: a primitive-owned one lives as long as the plan
  bool winograd = false;
  dnnl::reorder to_blocked,
      from_blocked;  // NCHW <-> the Winograd primitive's layout
};

std::optional<Plan> make_plan(const memory::dims &src_dims, const memory::dims &weight_dims,
                              const memory::dims &dst_dims, bool with_bias, ConvolutionShape s, bool winograd) {
  const auto f32 = memory::data_type::f32;
  const memory::desc bias(memory::dims{weight_dims[0]}, f32, Tag::a);
  const memory::dims strides{s.stride, s.stride}, padding{s.padding, s.padding};
  // Winograd lets oneDNN choose every layout (it needs blocked ones); the
  // direct convolution works on the tensors as they are.
  const Tag io = winograd ? Tag::any : Tag::nchw;
  const memory::desc src(src_dims, f32, io), dst(dst_dims, f32, io);
  const memory::desc weights(weight_dims, f32, winograd ? Tag::any : Tag::oihw);
  const auto algorithm = winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  try {
    const auto desc = with_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src,
                                                                  weights, bias, dst, strides, padding, padding)
                                : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, src,
                                                                  weights, dst, strides, padding, padding);
    dnnl::primitive_attr attributes;
    attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::convolution_forward::primitive_desc pd(desc, attributes, cpu_engine());
    Plan plan{dnnl::convolution_forward(pd),
              pd.src_desc(),
              pd.weights_desc(),
              pd.dst_desc(),
              pd.scratchpad_desc(),
              winograd,
              {},
              {}};
    if (winograd) {
      const memory::desc src_nchw(src_dims, f32, Tag::nchw), dst_nchw(dst_dims, f32, Tag::nchw);
      plan.to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), src_nchw, cpu_engine(), plan.src));
      plan.from_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), plan.dst, cpu_engine(), dst_nchw));
    }
    // Winograd transforms the whole input at once: its scratchpad is ~4.5x the activation (1.2 GB
    // for a 256-channel 512x512 VAE layer). Above the budget the direct convolution runs instead.
    if (winograd && pd.scratchpad_desc().get_size() + plan.src.get_size() + plan.dst.get_size() > kWinogradScratchBytes)
      return std::nullopt;
    return plan;
  } catch (const dnnl::error &) {
    return std::nullopt;  // oneDNN has no kernel for this case on this CPU: the caller runs aten::conv2d
  }
}

}  // namespace

struct OneDnnConvolution::State {
  std::map<std::vector<int64_t>, std::optional<Plan>> plans;  // by input size and whether Winograd is allowed
  memory packed;                                              // Winograd weights
  memory::desc packed_layout;
  const void *packed_from = nullptr;
  int64_t packed_version = -1;
  bool last_winograd = false;

  const memory &packed_weights(const at::Tensor &weight, const memory::desc &layout) {
    const bool fresh = packed && packed_layout == layout && packed_from == weight.data_ptr() &&
                       packed_version == int64_t(weight._version());
    if (!fresh) {
      dnnl::stream stream(cpu_engine());
      memory plain({weight.sizes().vec(), memory::data_type::f32, Tag::oihw}, cpu_engine(), weight.data_ptr());
      packed = memory();  // free the old packing before allocating the new one
      packed = memory(layout, cpu_engine());
      dnnl::reorder(plain, packed).execute(stream, plain, packed);
      stream.wait();
      packed_layout = layout;
      packed_from = weight.data_ptr();
      packed_version = int64_t(weight._version());
    }
    return packed;
  }
};

OneDnnConvolution::OneDnnConvolution() : state_(std::make_unique<State>()) {}
OneDnnConvolution::~OneDnnConvolution() = default;

void OneDnnConvolution::release() { *state_ = State(); }

bool OneDnnConvolution::used_winograd() const { return state_->last_winograd; }

at::Tensor OneDnnConvolution::run(const at::Tensor &input, const at::Tensor &weight, const at::Tensor &bias,
                                  ConvolutionShape shape, bool allow_packing) {
  state_->last_winograd = false;
  const auto f32 = at::kFloat;
  if (input.dim() != 4 || weight.dim() != 4 || !input.device().is_cpu() || !weight.device().is_cpu() ||
      input.scalar_type() != f32 || weight.scalar_type() != f32 || (bias.defined() && bias.scalar_type() != f32) ||
      weight.size(2) != weight.size(3) || input.size(1) != weight.size(1) || !weight.is_contiguous())
    return {};
  const int64_t n = input.size(0), height = input.size(2), width = input.size(3);
  const int64_t out_channels = weight.size(0), in_channels = weight.size(1), kernel = weight.size(2);
  const int64_t out_height = (height + 2 * shape.padding - kernel) / shape.stride + 1;
  const int64_t out_width = (width + 2 * shape.padding - kernel) / shape.stride + 1;
  if (out_height < 1 || out_width < 1) return {};

  // Inference tensors carry no version counter, so in-place changes could not
  // be noticed.
  const bool winograd = allow_packing && !weight.is_inference() &&
                        winograd_worth_it(n * out_height * out_width, in_channels, out_channels, kernel, shape);
  const memory::dims src_dims{n, in_channels, height, width}, dst_dims{n, out_channels, out_height, out_width};
  auto found = state_->plans.find({n, in_channels, height, width, winograd});
  if (found == state_->plans.end()) {
    std::optional<Plan> plan;
    if (winograd) plan = make_plan(src_dims, weight.sizes().vec(), dst_dims, bias.defined(), shape, true);
    if (!plan) plan = make_plan(src_dims, weight.sizes().vec(), dst_dims, bias.defined(), shape, false);
    found = state_->plans.emplace(std::vector<int64_t>{n, in_channels, height, width, winograd}, std::move(plan)).first;
  }
  if (!found->second) return {};
  Plan &plan = *found->second;

  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty({n, out_channels, out_height, out_width}, x.options());
  dnnl::stream stream(cpu_engine());
  memory src({src_dims, memory::data_type::f32, Tag::nchw}, cpu_engine(), x.data_ptr());
  memory dst({dst_dims, memory::data_type::f32, Tag::nchw}, cpu_engine(), out.data_ptr());
  std::unordered_map<int, memory> args;
  args[DNNL_ARG_SCRATCHPAD] = memory(plan.scratchpad, cpu_engine());
  if (bias.defined()) {
    const at::Tensor b = bias.contiguous();
    args[DNNL_ARG_BIAS] = memory({{out_channels}, memory::data_type::f32, Tag::a}, cpu_engine(), b.data_ptr());
  }
  if (plan.winograd) {
    memory src_blocked(plan.src, cpu_engine()), dst_blocked(plan.dst, cpu_engine());
    plan.to_blocked.execute(stream, src, src_blocked);
    args[DNNL_ARG_SRC] = src_blocked;
    args[DNNL_ARG_WEIGHTS] = state_->packed_weights(weight, plan.weights);
    args[DNNL_ARG_DST] = dst_blocked;
    plan.convolution.execute(stream, args);
    plan.from_blocked.execute(stream, dst_blocked, dst);
  } else {
    args[DNNL_ARG_SRC] = src;
    args[DNNL_ARG_WEIGHTS] = memory(plan.weights, cpu_engine(), weight.data_ptr());
    args[DNNL_ARG_DST] = dst;
    plan.convolution.execute(stream, args);
  }
  stream.wait();
  state_->last_winograd = plan.winograd;
  return out;
}

bool onednn_available() { return true; }

#else  // built without oneDNN: every call declines

struct OneDnnConvolution::State {};
OneDnnConvolution::OneDnnConvolution() : state_(std::make_unique<State>()) {}
OneDnnConvolution::~OneDnnConvolution() = default;
void OneDnnConvolution::release() {}
bool OneDnnConvolution::used_winograd() const { return false; }
at::Tensor OneDnnConvolution::run(const at::Tensor &, const at::Tensor &, const at::Tensor &, ConvolutionShape, bool) {
  return {};
}
bool onednn_available() { return false; }

#endif

}  // namespace sdtune::kernels
