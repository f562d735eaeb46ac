// sdtune tokenize: show how a prompt becomes token ids and weights.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/printable.h"
#include "cli/common_flags.h"
#include "io/model_files.h"
#include "pipeline/components.h"

namespace sdtune::cli {

namespace {

struct TokenizeFlags {
  ModelFlags model;
  PromptFlags prompt;
  EmbeddingFlags embeddings;
  std::string text;
  bool json = false;
};

void run(const TokenizeFlags& flags) {
  const auto tokenizer = pipeline::load_tokenizer(flags.model.open());
  flags.embeddings.apply({flags.text}, *tokenizer);
  const auto tokens = text::tokenize_prompt(*tokenizer, flags.text, flags.prompt.options());
  report_prompt("the prompt", flags.text, tokens, flags.prompt);

  if (flags.json) {
    nlohmann::json out;
    nlohmann::json chunks = nlohmann::json::array();
    for (const auto& chunk : tokens.chunks) {
      nlohmann::json names = nlohmann::json::array();
      for (int64_t id : chunk.ids) names.push_back(tokenizer->token_text(id));
      chunks.push_back({{"input_ids", chunk.ids}, {"tokens", names}, {"weights", chunk.weights}});
    }
    out["input_ids"] = chunks[0]["input_ids"];
    out["tokens"] = chunks[0]["tokens"];
    out["weights"] = chunks[0]["weights"];
    out["chunks"] = chunks;
    out["token_count"] = tokens.token_count;
    out["truncated_text"] = tokens.truncated_text;
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << tokens.token_count << " tokens, " << tokens.chunks.size() << " chunk(s) of "
            << tokenizer->max_length() << " ids\n";
  for (size_t c = 0; c < tokens.chunks.size(); ++c) {
    const auto& chunk = tokens.chunks[c];
    std::cout << "chunk " << c + 1 << ":\n  pos     id  weight  token\n";
    for (size_t i = 0; i < chunk.ids.size(); ++i) {
      const bool padding = i > 0 && chunk.ids[i - 1] == tokenizer->eos_id();
      if (padding) {  // everything after EOS is padding
        std::cout << "  (" << chunk.ids.size() - i << " x pad id " << tokenizer->pad_id() << ")\n";
        break;
      }
      std::cout << "  " << std::setw(3) << i << " " << std::setw(6) << chunk.ids[i] << "  " << std::fixed
                << std::setprecision(3) << chunk.weights[i] << "  " << printable(tokenizer->token_text(chunk.ids[i])) << "\n";
    }
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* sub = app.add_subcommand("tokenize", "show the token ids and weights of a prompt");
  flags->model.add_to(sub, "--model", {false, false, {"tokenizer"}});
  sub->add_option("--prompt", flags->text, "prompt text")->required();
  flags->prompt.add_to(sub, /*with_clip_skip=*/false);  // ids do not depend on it
  flags->embeddings.add_to(sub);
  sub->add_flag("--json", flags->json, "print one JSON object: input_ids, tokens, weights (first chunk) and all chunks");
  sub->callback([flags] { run(*flags); });
}

}  // namespace sdtune::cli
