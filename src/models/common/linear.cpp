#include "models/common/linear.h"

#include <torch/torch.h>

#include <cmath>

#include "kernels/onednn_linear.h"

namespace sdtune::models {

namespace {

// x @ weight^T + bias through oneDNN for a weight that takes no gradient (the frozen base model
// of LoRA training): forward and the input gradient both read the plain weight in place (aten
// where oneDNN declines, e.g. CUDA or bf16).
struct FrozenWeightLinear : public torch::autograd::Function<FrozenWeightLinear> {
  // The bias comes wrapped: autograd takes every Tensor argument as an input, and an undefined one
  // (a layer without bias) is refused.
  static torch::Tensor forward(torch::autograd::AutogradContext *ctx, const torch::Tensor &x,
                               const torch::Tensor &weight, const c10::optional<torch::Tensor> &bias) {
    ctx->save_for_backward({weight});
    const torch::Tensor b = bias.value_or(torch::Tensor());
    const torch::Tensor y = kernels::onednn_linear(x, weight, b);
    return y.defined() ? y : torch::nn::functional::linear(x, weight, b);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext *ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor weight = ctx->get_saved_variables()[0];
    torch::Tensor grad = kernels::onednn_linear_input_grad(grads[0], weight);
    if (!grad.defined()) grad = torch::matmul(grads[0], weight);
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

bool frozen_on_cpu(const torch::Tensor &weight, const torch::Tensor &bias) {
  return weight.device().is_cpu() && weight.scalar_type() == torch::kFloat && !weight.requires_grad() &&
         !(bias.defined() && bias.requires_grad());
}

}  // namespace

torch::Tensor linear(const torch::Tensor &x, const torch::Tensor &weight, const torch::Tensor &bias) {
  // oneDNN whenever the weight takes no gradient, in every mode, so that a gradient-checkpointing
  // recomputation repeats the first pass exactly; weights being trained go to aten, which also
  // computes their gradient.
  if (frozen_on_cpu(weight, bias)) {
    if (x.requires_grad() && torch::GradMode::is_enabled())
      return FrozenWeightLinear::apply(x, weight, bias.defined() ? c10::make_optional(bias) : c10::nullopt);
    torch::Tensor y = kernels::onednn_linear(x, weight, bias);
    if (y.defined()) return y;
  }
  return torch::nn::functional::linear(x, weight, bias);
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  // torch.nn.Linear's default initialisation (uniform in +-1/sqrt(in)), for
  // randomly made models.
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    bias = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor &x) { return linear(x, weight, bias); }

}  // namespace sdtune::models
