#include "lora/lora_adapters.h"

#include <torch/torch.h>

#include <map>

#include "core/error.h"
#include "core/printable.h"

namespace sdtune::lora {

namespace {

bool ends_with_target(const std::string& path, const std::string& target) {
  return path == target || (path.size() > target.size() && path.compare(path.size() - target.size(), target.size(), target) == 0 &&
                            path[path.size() - target.size() - 1] == '.');
}

std::map<std::string, std::shared_ptr<models::AdaptableLinearImpl>> adaptable_layers(torch::nn::Module& model) {
  std::map<std::string, std::shared_ptr<models::AdaptableLinearImpl>> layers;
  for (const auto& item : model.named_modules())
    if (auto layer = std::dynamic_pointer_cast<models::AdaptableLinearImpl>(item.value())) layers[item.key()] = layer;
  return layers;
}

}  // namespace

LoraAdapters LoraAdapters::attach_new(torch::nn::Module& model, Component component, const LoraTrainingConfig& config,
                                      at::Generator generator) {
  if (config.rank < 1) throw Error("--rank", "must be at least 1");
  LoraAdapters adapters;
  adapters.component_ = component;
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_modules()) {
    auto layer = std::dynamic_pointer_cast<models::AdaptableLinearImpl>(item.value());
    if (!layer) continue;
    bool wanted = false;
    for (const auto& target : config.targets) wanted = wanted || ends_with_target(item.key(), target);
    if (!wanted) continue;
    const auto options = layer->weight.options().dtype(torch::kFloat);  // LoRA parameters stay fp32
    at::Tensor down = at::normal(0.0, 1.0 / double(config.rank), {config.rank, layer->weight.size(1)}, generator, options.device(torch::kCPU));
    at::Tensor up = torch::zeros({layer->weight.size(0), config.rank}, options);
    layer->adapters.push_back({down.to(options.device()).requires_grad_(true), up.requires_grad_(true), config.alpha / double(config.rank)});
    adapters.slots_.push_back({item.key(), layer, layer->adapters.size() - 1, config.alpha});
  }
  if (adapters.slots_.empty()) throw Error("--lora_target_modules", "no module of the model matches the LoRA targets");
  return adapters;
}

LoraAdapters LoraAdapters::attach_from(torch::nn::Module& model, const LoraFile& file, Component component, double weight) {
  LoraAdapters adapters;
  adapters.component_ = component;
  const auto layers = adaptable_layers(model);
  for (const auto& m : file.modules) {
    if (m.component != component) continue;
    if (m.type != ModuleType::LoRA || m.mid.defined() || m.dora_scale.defined())
      throw Error(file.path, "module " + in_quotes(m.key_prefix) + " is a " + m.type_name() + " module; side paths hold plain LoRA only");
    auto it = layers.find(m.module);
    if (it == layers.end() || m.down.dim() != 2 || it->second->weight.size(0) != m.up.size(0) || it->second->weight.size(1) != m.down.size(1))
      throw Error(file.path, "LoRA module " + in_quotes(m.key_prefix) + " does not fit an adaptable projection of the model");
    const double alpha = m.alpha.value_or(double(m.rank()));
    const auto options = it->second->weight.options().dtype(torch::kFloat);
    it->second->adapters.push_back({m.down.to(options).clone().requires_grad_(true), m.up.to(options).clone().requires_grad_(true),
                                    weight * alpha / double(m.rank())});
    adapters.slots_.push_back({m.module, it->second, it->second->adapters.size() - 1, alpha});
  }
  return adapters;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraAdapters::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : slots_) {
    const auto& a = s.layer->adapters[s.index];
    out.emplace_back(s.module + ".lora_A.weight", a.down);
    out.emplace_back(s.module + ".lora_B.weight", a.up);
  }
  return out;
}

std::vector<torch::Tensor> LoraAdapters::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

void LoraAdapters::load_weights(const LoraFile& file) {
  std::map<std::string, const LoraModule*> by_module;
  for (const auto& m : file.modules)
    if (m.component == component_) by_module[m.module] = &m;
  if (by_module.size() != slots_.size())
    throw Error(file.path, "holds " + std::to_string(by_module.size()) + " LoRA modules; this run trains " + std::to_string(slots_.size()));
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    auto it = by_module.find(s.module);
    auto& a = s.layer->adapters[s.index];
    if (it == by_module.end()) throw Error(file.path, "has no LoRA weights for " + s.module);
    if (it->second->type != ModuleType::LoRA || it->second->mid.defined())
      throw Error(file.path, "module " + in_quotes(it->second->key_prefix) + " is a " + it->second->type_name() + " module, not this run's LoRA");
    if (!it->second->down.sizes().equals(a.down.sizes()) || !it->second->up.sizes().equals(a.up.sizes()))
      throw Error(file.path, "LoRA weights of " + s.module + " have another shape than this run's (a different --rank?)");
    a.down.copy_(it->second->down);
    a.up.copy_(it->second->up);
  }
}

LoraFile LoraAdapters::to_file(const std::string& path) const {
  LoraFile file;
  file.path = path;
  file.format = "diffusers";
  for (const auto& s : slots_) {
    const auto& a = s.layer->adapters[s.index];
    LoraModule m;
    m.component = component_;
    m.module = s.module;
    m.key_prefix = s.module;
    m.down = a.down.detach().cpu().clone();
    m.up = a.up.detach().cpu().clone();
    m.alpha = s.alpha;
    file.modules.push_back(m);
  }
  return file;
}

void LoraAdapters::detach() {
  for (auto& s : slots_) s.layer->adapters.clear();
  slots_.clear();
}

}  // namespace sdtune::lora
