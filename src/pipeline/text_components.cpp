#include "pipeline/text_components.h"

#include <torch/torch.h>

#include "io/model_folder.h"
#include "io/tensor_io.h"

namespace sdtune::pipeline {

std::unique_ptr<text::ClipTokenizer> load_tokenizer(const io::ModelFolder& folder) {
  return std::make_unique<text::ClipTokenizer>(folder.component_dir("tokenizer"));
}

models::ClipTextModel load_text_encoder(const io::ModelFolder& folder, const LoadOptions& options) {
  const std::string config_path = folder.component_config_path("text_encoder");
  const auto config = models::ClipTextConfig::from_json(io::read_json_file(config_path), config_path);
  models::ClipTextModel encoder(config);
  encoder->to(options.dtype);
  const io::SafetensorsSet weights(folder.weight_files("text_encoder", options.variant));
  io::load_module_weights(*encoder, weights, "text_model.");
  encoder->to(options.device);
  encoder->eval();
  return encoder;
}

TextComponents load_text_components(const io::ModelFolder& folder, const LoadOptions& options) {
  return {load_tokenizer(folder), load_text_encoder(folder, options)};
}

}  // namespace sdtune::pipeline
