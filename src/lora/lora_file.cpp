#include "lora/lora_file.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "core/printable.h"
#include "io/adapter_config.h"
#include "io/model_source.h"
#include "io/json_file.h"
#include "io/tensor_io.h"
#include "lora/module_delta.h"
#include "lora/module_names.h"

namespace fs = std::filesystem;

namespace sdtune::lora {

namespace {

enum class Role { Down, Up, Alpha, Mid, Factor, DoraScale };

struct ParsedKey {
  std::string format;
  Component component;
  std::string module;
  bool flat;
  Role role;
  std::string factor;  // Role::Factor: its key, e.g. "hada_w1_a"
  std::string stem;    // the key without its role suffix (kohya keys), for messages
};

// The kohya-named keys of a module (LoRA, LoCon, LyCORIS), by role.
const std::vector<std::tuple<std::string, Role, std::string>>& kohya_suffixes() {
  static const std::vector<std::tuple<std::string, Role, std::string>> suffixes = [] {
    std::vector<std::tuple<std::string, Role, std::string>> s = {
        {".lora_down.weight", Role::Down, ""}, {".lora_up.weight", Role::Up, ""}, {".lora_mid.weight", Role::Mid, ""},
        {".alpha", Role::Alpha, ""},           {".dora_scale", Role::DoraScale, ""}};
    for (const char* f : {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w1_a",
                          "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"})
      s.emplace_back(std::string(".") + f, Role::Factor, f);
    return s;
  }();
  return suffixes;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool strip_prefix(std::string* s, const std::string& prefix) {
  if (s->rfind(prefix, 0) != 0) return false;
  s->erase(0, prefix.size());
  return true;
}

// Splits "<component prefix><module>" into component and module path.
Component component_of(std::string* module) {
  strip_prefix(module, "base_model.model.");
  if (strip_prefix(module, "text_encoder.")) {
    strip_prefix(module, "text_model.");
    return Component::TextEncoder;
  }
  strip_prefix(module, "unet.");
  if (strip_prefix(module, "text_model.")) return Component::TextEncoder;
  return Component::UNet;
}

// Old attention-processor keys: "<attn>.processor.to_q_lora" -> "<attn>.to_q" (to_out_lora -> to_out.0).
// Plain string tests: std::regex recurses per character and overflowed the stack on a 200 KB key.
bool old_processor_module(std::string* module) {
  static const std::string marker = ".processor.";
  const size_t at = module->rfind(marker);
  if (at == std::string::npos) return false;
  const std::string projection = module->substr(at + marker.size());
  for (const char* name : {"to_q", "to_k", "to_v", "to_out"}) {
    if (projection != std::string(name) + "_lora") continue;
    *module = module->substr(0, at) + "." + name + (projection == "to_out_lora" ? ".0" : "");
    return true;
  }
  return false;
}

c10::optional<ParsedKey> parse_key(const std::string& key) {
  for (const auto& [prefix, component] : {std::pair<std::string, Component>{"lora_unet_", Component::UNet}, {"lora_te_", Component::TextEncoder}}) {
    if (key.rfind(prefix, 0) != 0) continue;
    for (const auto& [suffix, role, factor] : kohya_suffixes())
      if (ends_with(key, suffix)) {
        std::string flat = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
        if (component == Component::TextEncoder) strip_prefix(&flat, "text_model_");
        return ParsedKey{"kohya", component, flat, true, role, factor, key.substr(0, key.size() - suffix.size())};  // unflattened by read_lora
      }
  }
  static const std::vector<std::tuple<std::string, Role, std::string>> dotted_suffixes = {
      {".lora.down.weight", Role::Down, "diffusers"},  {".lora.up.weight", Role::Up, "diffusers"},
      {".lora_A.weight", Role::Down, "peft"},          {".lora_B.weight", Role::Up, "peft"},
      {".lora_A.default.weight", Role::Down, "peft"},  {".lora_B.default.weight", Role::Up, "peft"},
      {".alpha", Role::Alpha, "diffusers"}};
  for (const auto& [suffix, role, format] : dotted_suffixes) {
    if (!ends_with(key, suffix)) continue;
    std::string module = key.substr(0, key.size() - suffix.size());
    std::string fmt = format;
    if (old_processor_module(&module)) fmt = "diffusers-old";
    const Component component = component_of(&module);
    return ParsedKey{fmt, component, module, false, role, "", ""};
  }
  return c10::nullopt;
}

// Puts one tensor of a module where its role says; LoRA and LyCORIS keys in one module are an Error.
void store_tensor(const ParsedKey& key, const at::Tensor& t, const std::string& name, const std::string& path, LoraModule* m) {
  if (key.role == Role::Alpha) {
    if (t.numel() != 1) throw Error(path, "tensor " + in_quotes(name) + ": alpha must be a single number");
    m->alpha = t.to(torch::kDouble).item<double>();
    return;
  }
  const at::Tensor value = t.to(torch::kFloat);
  if (key.role == Role::DoraScale) {
    m->dora_scale = value;
    return;
  }
  const ModuleType type = key.role != Role::Factor ? ModuleType::LoRA : key.factor.rfind("hada_", 0) == 0 ? ModuleType::LoHa : ModuleType::LoKr;
  const bool first = !m->down.defined() && !m->up.defined() && !m->mid.defined() && m->factors.empty();
  if (!first && m->type != type) throw Error(path, "module " + in_quotes(m->key_prefix) + " mixes the keys of two adapter types (" + in_quotes(name) + ")");
  m->type = type;
  if (key.role == Role::Factor) m->factors[key.factor] = value;
  else (key.role == Role::Down ? m->down : key.role == Role::Up ? m->up : m->mid) = value;
}

// A module whose tensors cannot make a weight change is refused when read, naming it.
void check_module(const LoraModule& m, const std::string& path) {
  const std::string name = "module " + in_quotes(m.key_prefix);
  if (m.type == ModuleType::LoRA) {
    if (!m.down.defined() || !m.up.defined()) throw Error(path, name + " has " + (m.down.defined() ? "no up" : "no down") + " matrix");
    if (m.down.dim() < 1 || m.down.size(0) == 0) throw Error(path, name + " has rank 0 (an empty down matrix)");
    const bool conv = m.down.dim() == 4;
    if ((m.down.dim() != 2 && !conv) || m.up.dim() != m.down.dim() || m.up.size(1) != m.down.size(0) ||
        (conv && (m.up.size(2) != 1 || m.up.size(3) != 1)) || (m.mid.defined() && !conv))
      throw Error(path, name + ": down " + std::to_string(m.down.dim()) + "-D and up matrices do not fit together");
  } else if (m.factors.empty()) {
    throw Error(path, name + " has only an alpha or a dora_scale");
  }
  for (const auto& [key, t] : m.factors)
    if (t.dim() < 1 || t.numel() == 0) throw Error(path, name + ": " + key + " is empty");
  const auto size = delta_size(m);
  if (!size.problem.empty()) throw Error(path, name + ": " + size.problem);
  if (m.dora_scale.defined() && m.dora_scale.numel() == 0) throw Error(path, name + ": dora_scale is empty");
}

}  // namespace

int64_t LoraModule::rank() const {
  if (type == ModuleType::LoRA) return down.size(0);
  if (type == ModuleType::LoHa) return factors.count("hada_w1_b") ? factors.at("hada_w1_b").size(0) : 0;
  for (const char* low_rank : {"lokr_w2_b", "lokr_w1_b"})  // ComfyUI's lokr.py: the last factorised one names dim
    if (factors.count(low_rank)) return factors.at(low_rank).size(0);
  return 0;
}

double LoraModule::scale() const { return alpha && rank() > 0 ? *alpha / double(rank()) : 1.0; }

std::string LoraModule::type_name() const {
  const bool conv = type == ModuleType::LoRA ? down.dim() == 4 : false;
  std::string name = type == ModuleType::LoHa ? "loha" : type == ModuleType::LoKr ? "lokr" : conv ? "locon" : "lora";
  if (mid.defined() || factors.count("hada_t1") || factors.count("lokr_t2")) name += "-cp";
  if (type == ModuleType::LoKr && rank() == 0) name += "-full";
  if (dora_scale.defined()) name += "+dora";
  return name;
}

std::string resolve_lora_path(const std::string& spec) {
  std::error_code ec;
  if (fs::is_regular_file(spec, ec)) {
    if (io::is_pickle_file(spec)) throw Error(spec, io::pickle_refusal(spec));
    return spec;
  }
  const std::string dir = fs::is_directory(spec, ec) ? spec : io::resolve_model_dir(spec);
  const fs::path standard = fs::path(dir) / "pytorch_lora_weights.safetensors";
  if (fs::is_regular_file(standard, ec)) return standard.string();
  std::vector<std::string> candidates;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".safetensors") candidates.push_back(entry.path().string());
  if (candidates.size() == 1) return candidates[0];
  throw Error(dir, candidates.empty() ? "holds no LoRA .safetensors file"
                                      : "holds several .safetensors files; name the LoRA file itself");
}

LoraFile read_lora(const std::string& spec) {
  LoraFile lora;
  lora.path = resolve_lora_path(spec);
  const io::SafetensorsFile file(lora.path);
  lora.metadata = file.metadata();
  std::map<std::pair<int, std::string>, LoraModule> by_module;
  for (const auto& entry : file.tensors()) {
    const auto parsed = parse_key(entry.name);
    if (!parsed) throw Error(lora.path, "tensor " + in_quotes(entry.name) + " is not a LoRA key of any known format (diffusers, PEFT, kohya)");
    if (lora.format.empty() || lora.format == "diffusers") lora.format = parsed->format;
    LoraModule& m = by_module[{int(parsed->component), parsed->module}];
    m.component = parsed->component;
    m.module = parsed->flat ? unflatten_module_name(parsed->module) : parsed->module;
    m.flat = parsed->flat;
    m.key_prefix = !parsed->stem.empty() ? parsed->stem : entry.name.substr(0, entry.name.rfind(parsed->role == Role::Alpha ? ".alpha" : ".lora"));
    at::Tensor t = io::read_tensor(file, entry);
    // A NaN or infinite weight would turn every image black (or the training NaN) without a word.
    if (!io::all_finite(t))
      throw Error(lora.path, "tensor " + in_quotes(entry.name) + " holds NaN or infinite values");
    store_tensor(*parsed, t, entry.name, lora.path, &m);
  }
  // Alphas that are not tensors: diffusers' lora_adapter_metadata, else PEFT's adapter_config.json.
  const auto adapter = io::read_adapter_config(fs::path(lora.path).parent_path().string());
  io::Json adapter_metadata = io::Json::object();
  if (auto it = lora.metadata.find("lora_adapter_metadata"); it != lora.metadata.end())
    adapter_metadata = io::parse_json_text(it->second, lora.path + " (lora_adapter_metadata)");
  for (auto& [key, m] : by_module) {
    check_module(m, lora.path);
    const std::string component = m.component == Component::UNet ? "unet." : "text_encoder.";
    if (!m.alpha && adapter_metadata.contains(component + "lora_alpha")) {
      m.alpha = io::config_value<double>(adapter_metadata, component + "lora_alpha", 0, lora.path);
      const auto patterns = io::config_value<std::map<std::string, double>>(adapter_metadata, component + "alpha_pattern", {}, lora.path);
      for (const auto& [pattern, alpha] : patterns)
        if (ends_with(m.module, pattern)) m.alpha = alpha;
    }
    if (!m.alpha && adapter) {
      m.alpha = adapter->lora_alpha;
      for (const auto& [pattern, alpha] : adapter->alpha_pattern)
        if (ends_with(m.module, pattern)) m.alpha = alpha;
    }
    if (m.alpha && !std::isfinite(*m.alpha)) throw Error(lora.path, "module " + in_quotes(m.key_prefix) + " has a non-finite alpha");
    lora.modules.push_back(m);
  }
  if (lora.modules.empty()) throw Error(lora.path, "holds no LoRA weights");
  return lora;
}

LoraFormat parse_lora_format(const std::string& name) {
  if (name == "diffusers") return LoraFormat::Diffusers;
  if (name == "peft") return LoraFormat::Peft;
  if (name == "kohya") return LoraFormat::Kohya;
  throw Error("--format", "unknown LoRA format " + in_quotes(name) + " (expected diffusers, peft or kohya)");
}

LoraModule with_alpha_folded(const LoraModule& m) {
  LoraModule folded = m;
  const double scale = m.scale();
  if (scale != 1.0) {
    at::Tensor& factor = m.type == ModuleType::LoRA   ? folded.up
                         : m.type == ModuleType::LoHa ? folded.factors.at("hada_w1_a")
                                                      : folded.factors.at(m.factors.count("lokr_w1") ? "lokr_w1" : "lokr_w1_a");
    factor = factor * scale;
  }
  if (m.rank() > 0) folded.alpha = double(m.rank());
  return folded;
}

void write_lora(const LoraFile& lora, const std::string& path, LoraFormat format, AlphaForm form) {
  io::TensorMap tensors;
  io::Json adapter_metadata = io::Json::object();
  for (const auto& stored : lora.modules) {
    const LoraModule m = form == AlphaForm::Folded ? with_alpha_folded(stored) : stored;
    const bool unet = m.component == Component::UNet;
    if (format == LoraFormat::Kohya) {
      const std::string stem = (unet ? "lora_unet_" : "lora_te_text_model_") + flatten_module_name(m.module);
      for (const auto& [suffix, t] : {std::pair{".lora_down.weight", m.down}, {".lora_up.weight", m.up}, {".lora_mid.weight", m.mid}, {".dora_scale", m.dora_scale}})
        if (t.defined()) tensors[stem + suffix] = t;
      for (const auto& [key, t] : m.factors) tensors[stem + "." + key] = t;
      if (m.alpha || m.rank() > 0) tensors[stem + ".alpha"] = torch::tensor(float(m.alpha.value_or(double(m.rank()))));
      continue;
    }
    if (m.type != ModuleType::LoRA || m.mid.defined() || m.dora_scale.defined())
      throw Error(path, "module " + in_quotes(m.key_prefix) + " is a " + m.type_name() +
                            " module, which only kohya keys hold (--format kohya): diffusers and PEFT keys are plain LoRA");
    const std::string component = unet ? "unet" : "text_encoder";
    const std::string stem = component + "." + (unet ? "" : "text_model.") + m.module;
    const bool diffusers = format == LoraFormat::Diffusers;
    tensors[stem + (diffusers ? ".lora.down.weight" : ".lora_A.weight")] = m.down;
    tensors[stem + (diffusers ? ".lora.up.weight" : ".lora_B.weight")] = m.up;
    // PEFT-style adapter metadata: the first module's rank/alpha, patterns for the others.
    if (!adapter_metadata.contains(component + ".r")) {
      adapter_metadata[component + ".r"] = m.rank();
      adapter_metadata[component + ".lora_alpha"] = m.alpha.value_or(double(m.rank()));
      adapter_metadata[component + ".rank_pattern"] = io::Json::object();
      adapter_metadata[component + ".alpha_pattern"] = io::Json::object();
      adapter_metadata[component + ".target_modules"] = io::Json::array();
    }
    if (adapter_metadata[component + ".r"] != m.rank()) adapter_metadata[component + ".rank_pattern"][m.module] = m.rank();
    const double alpha = m.alpha.value_or(double(m.rank()));
    if (adapter_metadata[component + ".lora_alpha"].get<double>() != alpha) adapter_metadata[component + ".alpha_pattern"][m.module] = alpha;
    const std::string target = target_name(m.module);
    auto& targets = adapter_metadata[component + ".target_modules"];
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) targets.push_back(target);
  }
  std::map<std::string, std::string> metadata{{"format", "pt"}};
  for (const auto& [k, v] : lora.metadata)
    if (k != "format" && k != "lora_adapter_metadata") metadata[k] = v;
  if (!adapter_metadata.empty()) metadata["lora_adapter_metadata"] = adapter_metadata.dump(2);
  io::save_tensors(path, tensors, metadata);
}

std::pair<std::string, double> parse_lora_flag(const std::string& value) {
  const size_t colon = value.rfind(':');
  if (colon != std::string::npos && colon + 1 < value.size()) {
    char* end = nullptr;
    const std::string number = value.substr(colon + 1);
    const double weight = std::strtod(number.c_str(), &end);
    if (end == number.c_str() + number.size()) {
      if (!std::isfinite(weight)) throw Error("--lora", "weight " + number + " of " + value.substr(0, colon) + " is not a finite number");
      return {value.substr(0, colon), weight};
    }
  }
  return {value, 1.0};
}

}  // namespace sdtune::lora
