#include "lora/lora_merge.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/printable.h"
#include "lora/module_delta.h"
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

// A module fits a weight when its change has the weight's element count, a LoRA its row and column
// layout (a linear's delta on a linear, a kxk one on a kxk convolution), and a dora_scale one
// magnitude per output row or input column.
bool fits(const LoraModule& m, const at::Tensor& target) {
  if (target.dim() < 2 || delta_size(m).numel != target.numel()) return false;
  if (m.type == ModuleType::LoRA) {
    const bool conv_delta = m.down.dim() == 4;
    if (m.up.size(0) != target.size(0) || conv_delta != (target.dim() == 4)) return false;
    if (!m.mid.defined() && m.down.size(1) != target.size(1)) return false;
  }
  if (m.dora_scale.defined() && m.dora_scale.numel() != target.size(dora_per_output(m, target.size(0)) ? 0 : 1)) return false;
  return true;
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
    } else if (!fits(m, target)) {
      problem = "has " + std::to_string(delta_size(m).numel) + " weights (" + m.type_name() + ") that do not fit the model's weight " +
                shape_text(target.sizes().vec());
    }
    if (!problem.empty()) {
      if (allow_partial) {
        report.skipped.push_back(m.key_prefix);
        continue;
      }
      throw Error(lora.path, "LoRA module " + in_quotes(m.key_prefix) + " " + problem +
                                 " (is this LoRA made for another base model? --lora_allow_partial skips such modules)");
    }
    at::Tensor change = weight_change(m, target, weight);
    // Finite factors can still overflow (or a zero DoRA norm divide): a black image would follow.
    if (!torch::isfinite(change).all().item<bool>())
      throw Error(lora.path, "LoRA module " + in_quotes(m.key_prefix) + " changes the weights to NaN or infinite values");
    plan.push_back({target, change});
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
