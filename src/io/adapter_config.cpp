#include "io/adapter_config.h"

#include <filesystem>

#include "core/error.h"
#include "core/printable.h"
#include "io/json_file.h"

namespace sdtune::io {

std::optional<AdapterConfig> read_adapter_config(const std::string& folder) {
  const std::filesystem::path path = std::filesystem::path(folder) / "adapter_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  const std::string where = path.string();
  const Json j = read_json_file(where);
  if (!j.is_object()) throw Error(where, "must be a JSON object");
  const std::string type = config_value<std::string>(j, "peft_type", "LORA", where);
  if (type != "LORA") throw Error(where, "peft_type " + in_quotes(type) + " is not LORA");
  AdapterConfig c;
  c.rank = config_value<int>(j, "r", 8, where);
  c.lora_alpha = config_value<double>(j, "lora_alpha", 8, where);
  c.use_rslora = config_value<bool>(j, "use_rslora", false, where);
  if (c.rank <= 0) throw Error(where, "r must be positive");
  // target_modules is a list of names or one regex string.
  if (auto t = j.find("target_modules"); t != j.end() && !t->is_null())
    c.target_modules = t->is_string() ? std::vector<std::string>{t->get<std::string>()}
                                      : config_value<std::vector<std::string>>(j, "target_modules", {}, where);
  c.rank_pattern = config_value<std::map<std::string, int>>(j, "rank_pattern", {}, where);
  c.alpha_pattern = config_value<std::map<std::string, double>>(j, "alpha_pattern", {}, where);
  return c;
}

}  // namespace sdtune::io
