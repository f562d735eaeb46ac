#include "models/common/gradient_checkpoint.h"

#include <torch/torch.h>

#include "models/common/adaptable_linear.h"

namespace sdtune::models {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockHolder : torch::CustomClassHolder {
  BlockFunction fn;
  size_t num_inputs = 0;  // the leading tensors are the inputs, the rest the block's trainable tensors
};

std::vector<torch::Tensor> trainable_tensors(const torch::nn::Module& block) {
  std::vector<torch::Tensor> out;
  for (const auto& p : block.parameters())
    if (p.requires_grad()) out.push_back(p);
  for (const auto& m : block.modules())
    if (const auto* linear = dynamic_cast<const AdaptableLinearImpl*>(m.get()))
      for (const auto& a : linear->adapters)
        for (const auto& t : {a.down, a.up})
          if (t.requires_grad()) out.push_back(t);
  return out;
}

struct Recompute : torch::autograd::Function<Recompute> {
  // Runs with gradients off (autograd's Function does that); only the inputs are kept.
  static torch::Tensor forward(AutogradContext* ctx, const c10::intrusive_ptr<BlockHolder>& holder, at::TensorList tensors) {
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward(tensors.vec());
    return holder->fn(std::vector<torch::Tensor>(tensors.begin(), tensors.begin() + long(holder->num_inputs)));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    std::vector<torch::Tensor> inputs;
    for (size_t i = 0; i < holder->num_inputs; ++i) inputs.push_back(saved[i].detach().requires_grad_(saved[i].requires_grad()));
    torch::Tensor output;
    {
      torch::AutoGradMode enable(true);
      output = holder->fn(inputs);
    }
    // Gradients of everything that wants one: the detached inputs and the block's own tensors.
    variable_list wanted;
    std::vector<size_t> slots;
    for (size_t i = 0; i < saved.size(); ++i) {
      const torch::Tensor& t = i < holder->num_inputs ? inputs[i] : saved[i];
      if (t.requires_grad()) wanted.push_back(t), slots.push_back(i);
    }
    variable_list grads(saved.size() + 1);  // slot 0: the holder, which takes no gradient
    if (wanted.empty() || !output.requires_grad()) return grads;
    const auto computed = torch::autograd::grad({output}, wanted, {grad_outputs[0]}, false, false, /*allow_unused=*/true);
    for (size_t k = 0; k < slots.size(); ++k) grads[slots[k] + 1] = computed[k];
    return grads;
  }
};

}  // namespace

torch::Tensor run_block(bool enabled, const torch::nn::Module& block, const BlockFunction& fn, const std::vector<torch::Tensor>& inputs) {
  if (!enabled || !torch::GradMode::is_enabled()) return fn(inputs);
  std::vector<torch::Tensor> tensors = inputs;
  const auto trainable = trainable_tensors(block);
  tensors.insert(tensors.end(), trainable.begin(), trainable.end());
  auto holder = c10::make_intrusive<BlockHolder>();
  holder->fn = fn;
  holder->num_inputs = inputs.size();
  return Recompute::apply(holder, at::TensorList(tensors));
}

}  // namespace sdtune::models
