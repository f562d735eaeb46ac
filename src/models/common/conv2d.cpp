#include "models/common/conv2d.h"

#include <torch/torch.h>

#include <cmath>

namespace sdtune::models {

Conv2dImpl::Conv2dImpl(const Conv2dOptions &o)
    : shape_{o.stride, o.padding >= 0 ? o.padding : (o.kernel - 1) / 2},
      onednn_(std::make_shared<kernels::OneDnnConvolution>()) {
  // PyTorch's default initialisation (kaiming_uniform with a = sqrt(5), uniform
  // bias), so a module built without loading weights behaves as torch.nn.Conv2d
  // would.
  weight = register_parameter("weight", torch::empty({o.out_channels, o.in_channels, o.kernel, o.kernel}));
  bias = register_parameter("bias", torch::empty({o.out_channels}));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(double(o.in_channels * o.kernel * o.kernel));
  bias.uniform_(-bound, bound);
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor &x) {
  // Only inference mode guarantees no gradient is wanted and lets weights be
  // packed: training's no-grad passes (gradient checkpointing, latents) keep
  // aten so their recomputation matches.
  if (c10::InferenceMode::is_enabled()) {
    torch::Tensor out = onednn_->run(x, weight, bias, shape_, /*allow_packing=*/true);
    if (out.defined()) return out;
  }
  return torch::conv2d(x, weight, bias, shape_.stride, shape_.padding);
}

void Conv2dImpl::release_packed_weights() { onednn_->release(); }

void release_packed_weights(torch::nn::Module &root) {
  for (const auto &module : root.modules(/*include_self=*/true))
    if (auto *conv = dynamic_cast<Conv2dImpl *>(module.get())) conv->release_packed_weights();
}

void use_channels_last(torch::nn::Module &root) {
  torch::NoGradGuard no_grad;
  for (const auto &module : root.modules(/*include_self=*/true))
    if (auto *conv = dynamic_cast<Conv2dImpl *>(module.get()))
      conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace sdtune::models
