#include "models/unet/unet_blocks.h"

#include <torch/torch.h>

#include "models/common/gradient_checkpoint.h"

namespace sdtune::models {

namespace {

ResnetBlock2D make_resnet(const StageOptions& o, int64_t in_channels, int64_t out_channels) {
  ResnetOptions r = o.resnet;
  r.in_channels = in_channels;
  r.out_channels = out_channels;
  r.temb_channels = o.temb_channels;
  return ResnetBlock2D(r);
}

Transformer2D make_transformer(const StageOptions& o, int64_t channels, int64_t layers) {
  TransformerOptions t = o.transformer;
  t.channels = channels;
  t.head_dim = channels / t.heads;
  t.layers = layers;
  return Transformer2D(t);
}

}  // namespace

torch::Tensor StageBase::run_resnet(size_t index, const torch::Tensor& x, const torch::Tensor& temb) {
  auto resnet = resnets_[index]->as<ResnetBlock2D>();
  return run_block(gradient_checkpointing, *resnet, [resnet](const auto& in) { return resnet->forward(in[0], in[1]); }, {x, temb});
}

torch::Tensor StageBase::run_transformer(size_t index, const torch::Tensor& x, const torch::Tensor& context) {
  auto transformer = attentions_[index]->as<Transformer2D>();
  return run_block(gradient_checkpointing, *transformer, [transformer](const auto& in) { return transformer->forward(in[0], in[1]); },
                   {x, context});
}

DownStageImpl::DownStageImpl(const StageOptions& o) {
  resnets_ = register_module("resnets", torch::nn::ModuleList());
  if (o.cross_attention) attentions_ = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) {
    resnets_->push_back(make_resnet(o, i == 0 ? o.in_channels : o.out_channels, o.out_channels));
    if (o.cross_attention) attentions_->push_back(make_transformer(o, o.out_channels, o.transformer.layers));
  }
  if (o.resample)
    downsamplers_ = register_module("downsamplers", torch::nn::ModuleList(Downsample2D(o.out_channels, o.downsample_padding)));
}

torch::Tensor DownStageImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                     std::vector<torch::Tensor>* skips) {
  for (size_t i = 0; i < resnets_->size(); ++i) {
    x = run_resnet(i, x, temb);
    if (attentions_) x = run_transformer(i, x, context);
    skips->push_back(x);
  }
  if (downsamplers_) {
    x = downsamplers_[0]->as<Downsample2D>()->forward(x);
    skips->push_back(x);
  }
  return x;
}

UpStageImpl::UpStageImpl(const StageOptions& o) {
  resnets_ = register_module("resnets", torch::nn::ModuleList());
  if (o.cross_attention) attentions_ = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) {
    const int64_t skip_channels = i == o.layers - 1 ? o.in_channels : o.out_channels;
    const int64_t resnet_in = i == 0 ? o.prev_output_channels : o.out_channels;
    resnets_->push_back(make_resnet(o, resnet_in + skip_channels, o.out_channels));
    if (o.cross_attention) attentions_->push_back(make_transformer(o, o.out_channels, o.transformer.layers));
  }
  if (o.resample) upsamplers_ = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(o.out_channels)));
}

torch::Tensor UpStageImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                   std::vector<torch::Tensor>* skips, const std::vector<int64_t>& upsample_size) {
  for (size_t i = 0; i < resnets_->size(); ++i) {
    x = torch::cat({x, skips->back()}, 1);
    skips->pop_back();
    x = run_resnet(i, x, temb);
    if (attentions_) x = run_transformer(i, x, context);
  }
  if (upsamplers_) x = upsamplers_[0]->as<Upsample2D>()->forward(x, upsample_size);
  return x;
}

MidStageImpl::MidStageImpl(const StageOptions& o) {
  resnets_ = register_module("resnets", torch::nn::ModuleList(make_resnet(o, o.in_channels, o.in_channels)));
  attentions_ = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i) {
    attentions_->push_back(make_transformer(o, o.in_channels, o.transformer.layers));
    resnets_->push_back(make_resnet(o, o.in_channels, o.in_channels));
  }
}

torch::Tensor MidStageImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context) {
  x = run_resnet(0, x, temb);
  for (size_t i = 0; i < attentions_->size(); ++i) {
    x = run_transformer(i, x, context);
    x = run_resnet(i + 1, x, temb);
  }
  return x;
}

}  // namespace sdtune::models
