// sdtune publish: a training output folder -> a Hub-ready LoRA repository (and --check, --push).
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "publish/publish.h"

namespace sdtune::cli {

namespace {

struct PublishFlags {
  publish::PublishOptions options;
  std::string check_dir;
  std::string push;
};

int check(const std::string& dir) {
  const auto problems = publish::check_published(dir);
  for (const auto& p : problems) std::cout << "problem: " << p << "\n";
  std::cout << dir << (problems.empty() ? ": ready to publish\n" : ": " + std::to_string(problems.size()) + " problem(s)\n");
  return problems.empty() ? 0 : 1;
}

void run(PublishFlags& f) {
  if (!f.check_dir.empty()) {
    if (const int status = check(f.check_dir)) throw ExitStatus{status};
    return;
  }
  auto& o = f.options;
  if (o.output_dir.empty() || o.repo_dir.empty()) throw Error("publish", "needs OUTPUT_DIR and --repo_dir (or --check DIR)");
  if (o.repo_id.empty()) o.repo_id = publish::hub_repo_id(f.push);
  for (const auto& file : publish::publish_folder(o)) std::cout << "wrote " << o.repo_dir << "/" << file << "\n";
  const auto problems = publish::check_published(o.repo_dir);
  for (const auto& p : problems) std::cout << "problem: " << p << "\n";
  if (!problems.empty()) throw Error(o.repo_dir, "the published folder has problems (listed above)");
  if (!f.push.empty()) publish::push_folder(o.repo_dir, f.push, [](const std::string& message) { std::cout << message << "\n"; });
}

}  // namespace

void add_publish_command(CLI::App& app) {
  auto f = std::make_shared<PublishFlags>();
  auto& o = f->options;
  CLI::App* sub = app.add_subcommand("publish", "make a Hub-ready LoRA repository from a training output folder");
  sub->add_option("output_dir", o.output_dir, "the folder `sdtune train` wrote");
  sub->add_option("--repo_dir", o.repo_dir, "the repository folder to fill (created when missing)");
  sub->add_option("--checkpoint", o.checkpoint, "publish checkpoint N (or \"latest\") instead of the final LoRA");
  sub->add_option("--repo_id", o.repo_id, "user/name on the Hub, for the card's usage lines (default: from --push or the folder name)");
  sub->add_option("--base_model", o.base_model, "base model id for the card (default: the one recorded in the LoRA)");
  sub->add_option("--license", o.license, "license for the card (default: the base model family's)");
  sub->add_flag("--kohya", o.kohya, "also write <repo name>.safetensors with kohya keys (A1111 / ComfyUI)");
  sub->add_flag("--allow_large", o.allow_large, "publish even with files over 200 MB or base weights in the folder");
  sub->add_option("--push", f->push, "git remote URL to commit and push to (branch main); https remotes use HF_TOKEN");
  sub->add_option("--check", f->check_dir, "only check an existing repository folder");
  sub->callback([f] { run(*f); });
}

}  // namespace sdtune::cli
