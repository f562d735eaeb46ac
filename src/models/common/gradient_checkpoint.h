// Gradient checkpointing (Chen et al. 2016): a block runs without keeping its activations; backward
// runs it again to get them. Trades one extra forward of the block for the memory of its activations.
#pragma once
#include <torch/nn/module.h>

#include <functional>
#include <vector>

namespace sdtune::models {

using BlockFunction = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

// fn(inputs), checkpointed when `enabled` and gradients are being recorded. `block` is the module fn
// runs: gradients reach its trainable tensors (parameters that require grad and LoRA side paths) even
// when no input requires grad. The block must be deterministic (no dropout), as in the UNet at p = 0.
torch::Tensor run_block(bool enabled, const torch::nn::Module& block, const BlockFunction& fn, const std::vector<torch::Tensor>& inputs);

}  // namespace sdtune::models
