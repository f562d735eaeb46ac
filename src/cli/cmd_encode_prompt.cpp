// sdtune encode-prompt: the text encoder's embeddings of a prompt, saved as safetensors.
#include <torch/torch.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "io/model_files.h"
#include "io/tensor_io.h"
#include "pipeline/prompt_encoder.h"
#include "pipeline/components.h"

namespace sdtune::cli {

namespace {

struct EncodePromptFlags {
  ModelFlags model;
  PromptFlags prompt;
  EmbeddingFlags embeddings;
  std::string text;
  std::string output;
  bool overwrite = false;
};

void run(const EncodePromptFlags& flags) {
  refuse_existing_output(flags.output, flags.overwrite);
  pipeline::LoadOptions load;
  load.variant = flags.model.variant;
  auto text_side = pipeline::load_text_components(flags.model.open(), load);
  flags.embeddings.apply({flags.text}, *text_side.tokenizer, text_side.encoder);
  const auto tokens = text::tokenize_prompt(*text_side.tokenizer, flags.text, flags.prompt.options());
  report_prompt("the prompt", flags.text, tokens, flags.prompt);
  const torch::Tensor embeds = pipeline::encode_prompt(text_side.encoder, tokens, flags.prompt.clip_skip);
  io::save_tensors(flags.output, {{"prompt_embeds", embeds.to(torch::kFloat)}},
                   {{"prompt", flags.text}, {"clip_skip", std::to_string(flags.prompt.clip_skip)},
                    {"prompt_weighting", flags.prompt.prompt_weighting}});
  std::cout << "wrote " << flags.output << ": prompt_embeds " << embeds.sizes() << "\n";
}

}  // namespace

void add_encode_prompt_command(CLI::App& app) {
  auto flags = std::make_shared<EncodePromptFlags>();
  CLI::App* sub = app.add_subcommand("encode-prompt", "encode a prompt with the text encoder into prompt_embeds");
  flags->model.add_to(sub, "--model", {false, false, {"tokenizer", "text_encoder"}});
  sub->add_option("--prompt", flags->text, "prompt text")->required();
  sub->add_option("--output", flags->output, "output .safetensors file (tensor prompt_embeds)")->required();
  sub->add_flag("--overwrite", flags->overwrite, "replace an existing --output (never a file the run reads)");
  flags->prompt.add_to(sub);
  flags->embeddings.add_to(sub);
  sub->callback([flags] { run(*flags); });
}

}  // namespace sdtune::cli
