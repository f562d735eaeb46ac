#include "pipeline/prompt_encoder.h"

#include <torch/torch.h>

namespace sdtune::pipeline {

at::Tensor encode_prompt(models::ClipTextModel& encoder, const text::TokenizedPrompt& prompt, int64_t clip_skip) {
  torch::NoGradGuard no_grad;
  const auto device = encoder->parameters().front().device();
  std::vector<int64_t> ids;
  std::vector<float> weights;
  for (const auto& chunk : prompt.chunks) {
    ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
    weights.insert(weights.end(), chunk.weights.begin(), chunk.weights.end());
  }
  const int64_t chunks = int64_t(prompt.chunks.size());
  const int64_t length = int64_t(prompt.chunks.front().ids.size());
  const torch::Tensor input_ids = torch::tensor(ids, torch::kLong).view({chunks, length}).to(device);
  torch::Tensor z = encoder->forward(input_ids, clip_skip);  // [chunks, length, hidden]
  if (prompt.has_weights()) {
    const torch::Tensor w = torch::tensor(weights).view({chunks, length, 1}).to(z.options());
    const torch::Tensor original_mean = z.mean({1, 2}, /*keepdim=*/true);
    z = z * w;
    z = z * (original_mean / z.mean({1, 2}, /*keepdim=*/true));
  }
  return z.reshape({1, chunks * length, z.size(2)});
}

}  // namespace sdtune::pipeline
