// sdtune dataset check: every problem of a training folder, with file and line, before training.
#include <iostream>

#include "cli/commands.h"
#include "core/printable.h"
#include "cli/common_flags.h"
#include "core/error.h"
#include "io/model_files.h"
#include "pipeline/components.h"
#include "train/dataset.h"

namespace sdtune::cli {

namespace {

struct CheckFlags {
  std::string dir;
  train::DatasetOptions dataset;
  int64_t resolution = 512;
  std::string trigger_word;
  std::string model;
};

void check(const CheckFlags& f) {
  auto dataset = train::read_dataset(f.dir, f.dataset);
  std::unique_ptr<text::ClipTokenizer> tokenizer;
  if (!f.model.empty()) {
    io::ModelSpec spec = io::spec_of(f.model);
    spec.components = {"tokenizer"};
    tokenizer = pipeline::load_tokenizer(io::ModelFiles(spec));
  }
  train::CheckOptions options;
  options.resolution = f.resolution;
  options.trigger_word = f.trigger_word;
  options.tokenizer = tokenizer.get();
  const auto summary = train::check_dataset(dataset, options);
  for (const auto& p : dataset.problems) std::cout << (p.error ? "error: " : "warning: ") << printable(p.where) << ": " << printable(p.problem, {500}) << "\n";
  std::cout << dataset.root << " (" << dataset.layout << "): " << summary.images << " images, " << summary.captions << " captions, "
            << summary.errors << " errors, " << summary.warnings << " warnings\n";
  if (!f.trigger_word.empty())
    std::cout << "trigger word \"" << f.trigger_word << "\" is in " << summary.with_trigger << " of " << summary.captions << " captions\n";
  if (!tokenizer) std::cout << "(caption lengths not checked: pass --model to count tokens)\n";
  if (summary.errors > 0) throw Error(f.dir, std::to_string(summary.errors) + " problem(s) to fix before training (listed above)");
}

}  // namespace

void add_dataset_command(CLI::App& app) {
  CLI::App* group = app.add_subcommand("dataset", "check a training image folder");
  group->require_subcommand(1);
  auto f = std::make_shared<CheckFlags>();
  CLI::App* sub = group->add_subcommand("check", "report missing/unreadable/tiny images, broken metadata lines, captions");
  sub->add_option("dir", f->dir, "dataset folder (metadata.jsonl, metadata.csv or .txt captions)")->required();
  sub->add_option("--caption_column", f->dataset.caption_column, "caption column of the metadata")->capture_default_str();
  sub->add_option("--image_column", f->dataset.image_column, "image column of the metadata (file_name also works)")->capture_default_str();
  add_max_image_pixels_flag(sub);
  sub->add_option("--resolution", f->resolution, "training resolution (smaller images are reported)")
      ->check(CLI::Range(int64_t(8), int64_t(8192)))
      ->capture_default_str();
  sub->add_option("--trigger_word", f->trigger_word, "count the captions that contain this token");
  sub->add_option("--model", f->model, "model whose tokenizer counts caption tokens (over 75 is reported)");
  sub->callback([f] { check(*f); });
}

}  // namespace sdtune::cli
