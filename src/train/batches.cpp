#include "train/batches.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "io/image_file.h"

namespace sdtune::train {

namespace {

int64_t random_below(int64_t n, at::Generator& generator) {
  return n <= 1 ? 0 : at::randint(n, {1}, generator, torch::kLong).item<int64_t>();
}

}  // namespace

at::Tensor train_transform(const io::RgbImage& image, int64_t resolution, Interpolation mode, bool center_crop, bool random_flip,
                           at::Generator& generator) {
  // torchvision Resize(int): the shorter side becomes `resolution`, the longer keeps the aspect.
  const bool wide = image.width >= image.height;
  const int64_t width = wide ? int64_t(double(resolution) * double(image.width) / double(image.height)) : resolution;
  const int64_t height = wide ? resolution : int64_t(double(resolution) * double(image.height) / double(image.width));
  const FloatImage resized = resize(image, width, height, mode);
  const at::Tensor hwc = torch::from_blob(const_cast<float*>(resized.pixels.data()), {height, width, 3}, torch::kFloat);
  const int64_t top = center_crop ? int64_t(std::round(double(height - resolution) / 2.0)) : random_below(height - resolution + 1, generator);
  const int64_t left = center_crop ? int64_t(std::round(double(width - resolution) / 2.0)) : random_below(width - resolution + 1, generator);
  at::Tensor chw = hwc.slice(0, top, top + resolution).slice(1, left, left + resolution).permute({2, 0, 1}).clone();
  if (random_flip && at::rand({1}, generator).item<float>() < 0.5f) chw = chw.flip({2});
  return chw / 127.5 - 1.0;
}

BatchMaker::BatchMaker(const Dataset& dataset, pipeline::StableDiffusion& model, const BatchOptions& options, at::ScalarType dtype)
    : dataset_(dataset), model_(model), options_(options), dtype_(dtype) {
  if (options.cache && !options.center_crop)
    throw Error("--cache_latents", "needs --center_crop (a random crop would be drawn once and then frozen in the cache)");
}

at::Tensor BatchMaker::encode_text(const std::string& caption) {
  const auto ids = model_.tokenizer->encode_padded(caption);  // diffusers: truncation, max_length padding
  const auto device = model_.text_encoder->parameters().front().device();
  torch::NoGradGuard no_grad;
  return model_.text_encoder->forward(torch::tensor(ids).view({1, -1}).to(device)).to(dtype_);
}

models::LatentDistribution BatchMaker::encode_image(const at::Tensor& pixels) {
  const at::Tensor p = model_.vae->parameters().front();
  torch::NoGradGuard no_grad;
  return model_.vae->encode(pixels.to(p.device()).to(p.scalar_type()));
}

void BatchMaker::fill_cache(const std::function<void(int64_t, int64_t)>& on_item) {
  const int64_t total = int64_t(dataset_.items.size());
  at::Generator unused = at::detail::getDefaultCPUGenerator();  // centre crop, no flip: nothing is drawn
  for (int64_t i = 0; i < total; ++i) {
    const auto& item = dataset_.items[size_t(i)];
    const at::Tensor pixels =
        train_transform(io::read_image(item.image_path), options_.resolution, options_.interpolation, true, false, unused).unsqueeze(0);
    cached_images_.push_back(encode_image(pixels));
    if (options_.random_flip) cached_flipped_.push_back(encode_image(pixels.flip({3})));
    for (const auto& caption : item.captions)
      if (!cached_captions_.count(caption)) cached_captions_[caption] = encode_text(caption);
    if (on_item) on_item(i + 1, total);
  }
}

Batch BatchMaker::make(const std::vector<int64_t>& indices, at::Generator& generator) {
  const double scaling = model_.vae->config().scaling_factor;
  std::vector<at::Tensor> latents, contexts;
  if (!cached_images_.empty()) {
    for (const int64_t i : indices) {
      const auto& item = dataset_.items[size_t(i)];
      const bool flip = options_.random_flip && at::rand({1}, generator).item<float>() < 0.5f;
      latents.push_back((flip ? cached_flipped_ : cached_images_)[size_t(i)].sample(generator) * scaling);
      contexts.push_back(cached_captions_.at(item.captions[size_t(random_below(int64_t(item.captions.size()), generator))]));
    }
    return {torch::cat(latents).to(dtype_), torch::cat(contexts)};
  }
  std::vector<at::Tensor> pixels;
  std::vector<int64_t> ids;
  for (const int64_t i : indices) {
    const auto& item = dataset_.items[size_t(i)];
    pixels.push_back(train_transform(io::read_image(item.image_path), options_.resolution, options_.interpolation, options_.center_crop,
                                     options_.random_flip, generator));
    const auto& caption = item.captions[size_t(random_below(int64_t(item.captions.size()), generator))];
    const auto caption_ids = model_.tokenizer->encode_padded(caption);
    ids.insert(ids.end(), caption_ids.begin(), caption_ids.end());
  }
  const auto device = model_.text_encoder->parameters().front().device();
  torch::NoGradGuard no_grad;
  const at::Tensor sample = encode_image(torch::stack(pixels)).sample(generator) * scaling;
  const at::Tensor context = model_.text_encoder->forward(torch::tensor(ids).view({int64_t(indices.size()), -1}).to(device));
  return {sample.to(dtype_), context.to(dtype_)};
}

}  // namespace sdtune::train
