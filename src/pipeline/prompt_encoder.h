// Prompt chunks -> text-encoder embeddings, with A1111 emphasis applied.
#pragma once
#include <ATen/core/Tensor.h>

#include "models/clip_text.h"
#include "text/prompt_chunks.h"

namespace sdtune::pipeline {

// [1, max_length * chunks, hidden]: each chunk encoded on its own and concatenated (A1111). When a
// weight differs from 1, each chunk's embeddings are multiplied by their token weights and rescaled
// to the chunk's original mean, as A1111 does. clip_skip as diffusers (0 = last layer).
at::Tensor encode_prompt(models::ClipTextModel& encoder, const text::TokenizedPrompt& prompt, int64_t clip_skip);

}  // namespace sdtune::pipeline
