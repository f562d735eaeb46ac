// Flags shared by several subcommands, and turning them into library options.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "embeddings/textual_inversion.h"
#include "io/model_files.h"
#include "pipeline/components.h"
#include "text/prompt_chunks.h"

namespace sdtune::cli {

// A real-valued flag's check: a finite number within lo..hi (`open_low`/`open_high`: the end itself
// excluded). CLI11's Range would let NaN through, as every comparison with NaN is false.
CLI::Validator number_in(double lo, double hi, bool open_low = false, bool open_high = false);

// A seed's check: decimal digits of a number below 2^64 (CLI11 would wrap -1 and 2^64 silently).
CLI::Validator seed_number();

// An output that exists already is replaced only with --overwrite (a file the run reads never: see
// io::write_file_atomically).
void refuse_existing_output(const std::string& path, bool overwrite);

// --max_image_pixels (PIL's Image.MAX_IMAGE_PIXELS): when given, the limit of every image decoder.
void add_max_image_pixels_flag(CLI::App* app);

// Which model flags a command takes beyond --model, --revision, --variant and --config: only those
// it acts on (tokenize runs no VAE; train has the script's own --prediction_type and copies it in).
struct ModelFlagUse {
  bool vae = false;
  bool prediction_type = false;
  // What the command loads: all that a Hub id not in the cache needs downloaded.
  std::vector<std::string> components = io::pipeline_components();
};

struct ModelFlags {
  io::ModelSpec spec;
  std::string variant;  // loads the variant's weight files (and downloads those)
  void add_to(CLI::App* app, const std::string& model_flag = "--model", ModelFlagUse use = {});
  // The model's files; a single file's family decision (or a --vae) is told on stderr in one line.
  io::ModelFiles open() const;
};

struct PromptFlags {
  std::string prompt_weighting = "none";
  bool truncate_prompts = false;
  int clip_skip = 0;
  // `with_clip_skip`: only commands that run the text encoder take --clip_skip.
  void add_to(CLI::App* app, bool with_clip_skip = true);
  text::PromptOptions options() const;
};

// --embedding PATH[:TOKEN] (repeatable) and --embeddings_dir DIR: textual-inversion embeddings.
struct EmbeddingFlags {
  std::vector<std::string> files;
  std::string dir;
  void add_to(CLI::App* app);
  // Reads the --embedding files, then those of --embeddings_dir that `texts` use, and adds them to the
  // tokenizer and (when given) the text encoder; one line per embedding on stderr. Returns them.
  std::vector<embeddings::Embedding> apply(const std::vector<std::string>& texts, text::ClipTokenizer& tokenizer,
                                           models::ClipTextModel encoder = nullptr) const;
};

// --device, --dtype, --threads: where and in what precision the models run.
// A warning on stderr when bf16 would run on the CPU with a LibTorch whose CPU bf16 kernels are slow.
void warn_if_slow_bf16(bool bf16_on_cpu);

struct DeviceFlags {
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;
  void add_to(CLI::App* app, bool with_dtype = true);
  // Checks the combination (fp16 needs CUDA; CUDA must be built in) and applies --threads.
  pipeline::LoadOptions load_options(const std::string& variant) const;
};

// Tells the user what happened to a prompt: chunks used, text cut, emphasis syntax notes.
void report_prompt(const std::string& label, const std::string& prompt, const text::TokenizedPrompt& tokens,
                   const PromptFlags& flags);

}  // namespace sdtune::cli
