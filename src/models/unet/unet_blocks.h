// The UNet's stages. A down stage is resnets (each followed by a Transformer2D when it has cross
// attention) and an optional stride-2 downsampler; an up stage concatenates skip connections before
// each resnet and ends with an optional upsampler; the middle is resnet, transformer, resnet.
// CrossAttnDownBlock2D/DownBlock2D (and the up pair) differ only in having transformers, so one class
// serves both.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

#include "models/common/resnet.h"
#include "models/unet/transformer_2d.h"

namespace sdtune::models {

// The part every stage shares: whether its resnets and transformers run checkpointed in training.
class StageBase : public torch::nn::Module {
 public:
  bool gradient_checkpointing = false;

 protected:
  torch::Tensor run_resnet(size_t index, const torch::Tensor& x, const torch::Tensor& temb);
  torch::Tensor run_transformer(size_t index, const torch::Tensor& x, const torch::Tensor& context);
  torch::nn::ModuleList resnets_{nullptr}, attentions_{nullptr};
};

struct StageOptions {
  int64_t in_channels;
  int64_t out_channels;
  int64_t prev_output_channels = 0;  // up stages: channels coming from the stage below
  int64_t temb_channels;
  int64_t layers;
  bool cross_attention;
  bool resample;                     // add a downsampler / upsampler
  int64_t downsample_padding = 1;
  ResnetOptions resnet;              // groups, eps (channels are filled per layer)
  TransformerOptions transformer;    // heads, context dim, ... (channels filled per stage)
};

class DownStageImpl : public StageBase {
 public:
  explicit DownStageImpl(const StageOptions& options);
  // Returns the output and appends each layer's output to `skips`.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>* skips);

 private:
  torch::nn::ModuleList downsamplers_{nullptr};
};
TORCH_MODULE(DownStage);

class UpStageImpl : public StageBase {
 public:
  explicit UpStageImpl(const StageOptions& options);
  // Consumes one skip per layer from the back of `skips`. `upsample_size` is the spatial size of the
  // next skip connection, so odd sizes round-trip exactly.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>* skips, const std::vector<int64_t>& upsample_size);
  int64_t layers() const { return int64_t(resnets_->size()); }

 private:
  torch::nn::ModuleList upsamplers_{nullptr};
};
TORCH_MODULE(UpStage);

class MidStageImpl : public StageBase {
 public:
  explicit MidStageImpl(const StageOptions& options);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context);
};
TORCH_MODULE(MidStage);

}  // namespace sdtune::models
