// Textual-inversion embedding files, and a prompt that uses them: a safetensors file read as an
// embedding (A1111 emb_params, diffusers' one-key form, SDXL refused), its token added to a fresh copy
// of the SD 2 test tokenizer and text encoder, then the prompt tokenized and encoded.
#include <ATen/ATen.h>

#include "fuzz_support.h"
#include "embeddings/textual_inversion.h"
#include "io/model_files.h"
#include "pipeline/components.h"
#include "pipeline/prompt_encoder.h"
#include "text/prompt_chunks.h"

namespace {

using namespace sdtune;

const io::ModelFiles& test_model() {
  static const io::ModelFiles folder(SDTUNE_TEST_DATA "/tiny-sd2/pipeline");
  return folder;
}

}  // namespace

// Input: the embedding file, 0x1e, the token (may be empty: the file's own), 0x1e, a prompt.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(data, size, 3);
  const std::string path = fuzz::write_scratch_file("embedding.safetensors", parts[0]);
  fuzz::expect_success_or_error([&] {
    const auto embedding = embeddings::read_embedding(path, parts[1]);
    auto text = pipeline::load_text_components(test_model(), {});  // fresh: adding changes both
    embeddings::add_embeddings({embedding}, *text.tokenizer, text.encoder);
    const auto tokens = text::tokenize_prompt(*text.tokenizer, parts[2] + " " + embedding.token, {});
    at::NoGradGuard no_grad;
    pipeline::encode_prompt(text.encoder, tokens, 0);
  });
  return 0;
}
