// From dataset examples to what one training step needs: VAE latents of the transformed images and
// the text encoder's hidden states of their captions. With caching (kohya's --cache_latents) the
// frozen VAE and text encoder run once per image and caption before training instead of every step.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <vector>

#include "models/vae/autoencoder_kl.h"
#include "pipeline/text_to_image.h"
#include "train/dataset.h"
#include "train/resize.h"

namespace sdtune::train {

// Image -> [3, resolution, resolution] in [-1, 1]: resize the shorter side, center or random crop,
// optional horizontal flip (torchvision's Resize, CenterCrop/RandomCrop, RandomHorizontalFlip).
at::Tensor train_transform(const io::RgbImage& image, int64_t resolution, Interpolation mode, bool center_crop, bool random_flip,
                           at::Generator& generator);

struct BatchOptions {
  int64_t resolution = 512;
  Interpolation interpolation = Interpolation::Lanczos;
  bool center_crop = false;
  bool random_flip = false;
  bool cache = false;
};

struct Batch {
  at::Tensor latents;  // [n, 4, r/8, r/8], already times the VAE's scaling factor
  at::Tensor context;  // [n, 77, hidden]
};

class BatchMaker {
 public:
  // `model` supplies tokenizer, text encoder and VAE; latents and context come out in `dtype` on the
  // model's device. Caching needs --center_crop (a random crop would be fixed at its first draw).
  BatchMaker(const Dataset& dataset, pipeline::StableDiffusion& model, const BatchOptions& options, at::ScalarType dtype);

  // Encodes every image (both orientations when flipping) and caption once; `on_item(done, total)`.
  void fill_cache(const std::function<void(int64_t, int64_t)>& on_item = nullptr);
  // The examples `indices`: random crop, flip and caption choice and the latent sample drawn from `generator`.
  Batch make(const std::vector<int64_t>& indices, at::Generator& generator);

 private:
  at::Tensor encode_text(const std::string& caption);
  models::LatentDistribution encode_image(const at::Tensor& pixels);

  const Dataset& dataset_;
  pipeline::StableDiffusion& model_;
  BatchOptions options_;
  at::ScalarType dtype_;
  std::vector<models::LatentDistribution> cached_images_, cached_flipped_;
  std::map<std::string, at::Tensor> cached_captions_;
};

}  // namespace sdtune::train
