#include "lora/lora_merge.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "lora/module_names.h"

namespace sdtune::lora {

namespace {

void index_weights(torch::nn::Module& module, std::map<std::string, at::Tensor>* weights, std::map<std::string, std::string>* flat) {
  for (auto& p : module.named_parameters()) {
    const std::string& name = p.key();
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const std::string module_path = name.substr(0, name.size() - 7);
    (*weights)[module_path] = p.value();
    (*flat)[flatten_module_name(module_path)] = module_path;
  }
}

// up @ down in the layout of the target weight (linear, 1x1 or kxk convolution).
at::Tensor delta_of(const LoraModule& m, at::IntArrayRef target_shape) {
  const at::Tensor product = torch::matmul(m.up.flatten(1), m.down.flatten(1));
  return product.reshape(target_shape);
}

}  // namespace

LoraMerger::LoraMerger(torch::nn::Module& unet, torch::nn::Module& text_encoder) {
  index_weights(unet, &unet_weights_, &unet_flat_);
  index_weights(text_encoder, &text_weights_, &text_flat_);
}

at::Tensor LoraMerger::find_weight(Component component, const LoraModule& m) const {
  const auto& weights = component == Component::UNet ? unet_weights_ : text_weights_;
  const auto& flat = component == Component::UNet ? unet_flat_ : text_flat_;
  std::string module = m.module;
  if (m.flat) {  // match kohya's flattened name exactly against the model's modules
    auto it = flat.find(flatten_module_name(m.module));
    if (it == flat.end()) return {};
    module = it->second;
  }
  auto it = weights.find(module);
  return it == weights.end() ? at::Tensor() : it->second;
}

MergeReport LoraMerger::merge(const LoraFile& lora, double weight, bool allow_partial) {
  MergeReport report;
  struct Planned {
    at::Tensor target;
    at::Tensor delta;
  };
  std::vector<Planned> plan;  // checked in full before anything changes
  for (const auto& m : lora.modules) {
    at::Tensor target = find_weight(m.component, m);
    std::string problem;
    if (!target.defined()) {
      problem = "matches no module of the " + std::string(m.component == Component::UNet ? "UNet" : "text encoder");
    } else {
      const int64_t out = m.up.size(0), in = m.down.size(1);
      const bool fits = target.size(0) == out && target.dim() >= 2 && target.size(1) == in &&
                        (target.dim() == 2 ? m.down.dim() == 2 : (m.down.dim() == 4 && target.size(2) == m.down.size(2) && target.size(3) == m.down.size(3)));
      if (!fits)
        problem = "has shape down " + shape_text(m.down.sizes().vec()) + " / up " + shape_text(m.up.sizes().vec()) +
                  " that does not fit the model's weight " + shape_text(target.sizes().vec());
    }
    if (!problem.empty()) {
      if (allow_partial) {
        report.skipped.push_back(m.key_prefix);
        continue;
      }
      throw Error(lora.path, "LoRA module " + in_quotes(m.key_prefix) + " " + problem +
                                 " (is this LoRA made for another base model? --lora_allow_partial skips such modules)");
    }
    const double scale = weight * m.alpha.value_or(double(m.rank())) / double(m.rank());
    plan.push_back({target, delta_of(m, target.sizes().vec()) * scale});
    ++(m.component == Component::UNet ? report.unet_modules : report.text_encoder_modules);
  }
  torch::NoGradGuard no_grad;
  for (auto& p : plan) {
    const void* key = p.target.unsafeGetTensorImpl();
    if (!touched_.count(key)) touched_[key] = {p.target, p.target.clone()};
    p.target.add_(p.delta.to(p.target.options()));
  }
  return report;
}

void LoraMerger::unmerge() {
  torch::NoGradGuard no_grad;
  for (auto& [key, t] : touched_) t.weight.copy_(t.original);
  touched_.clear();
}

}  // namespace sdtune::lora
