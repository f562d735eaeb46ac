// Overlapping-tile processing with blended seams, as diffusers' AutoencoderKL tiled_encode /
// tiled_decode do it, so that a large image never passes through the VAE in one piece.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

namespace sdtune::models {

// Cuts `x` [B, C, H, W] into tiles of `tile_in` pixels every tile_in * (1 - overlap), maps each with
// `f` (which turns a tile_in tile into a tile_out tile), cross-fades each tile's first
// tile_out * overlap rows and columns with its upper and left neighbours, and stitches the tiles'
// top-left tile_out * (1 - overlap) squares together.
at::Tensor run_tiled(const at::Tensor& x, int64_t tile_in, int64_t tile_out, double overlap,
                     const std::function<at::Tensor(const at::Tensor&)>& f);

}  // namespace sdtune::models
