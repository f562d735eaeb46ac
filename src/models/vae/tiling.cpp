#include "models/vae/tiling.h"

#include <torch/torch.h>

#include "core/error.h"

namespace sdtune::models {

namespace {

// Cross-fades the first `extent` rows (dim 2) or columns (dim 3) of `b` from the end of `a`.
void blend(const torch::Tensor& a, torch::Tensor& b, int64_t dim, int64_t extent) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t y = 0; y < extent; ++y) {
    const double w = double(y) / double(extent);
    b.select(dim, y).copy_(a.select(dim, a.size(dim) - extent + y) * (1 - w) + b.select(dim, y) * w);
  }
}

// Runs `f` on overlapping tiles of `x` and stitches the results as diffusers' tiled_encode/decode.
}  // namespace

torch::Tensor run_tiled(const torch::Tensor& x, int64_t tile_in, int64_t tile_out, double overlap,
                        const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  const int64_t stride = int64_t(double(tile_in) * (1 - overlap));
  const int64_t blend_extent = int64_t(double(tile_out) * overlap);
  const int64_t row_limit = tile_out - blend_extent;
  if (stride <= 0) throw Error("--vae_tiling", "tile size too small for the overlap");
  std::vector<std::vector<torch::Tensor>> rows;
  for (int64_t i = 0; i < x.size(2); i += stride) {
    rows.emplace_back();
    for (int64_t j = 0; j < x.size(3); j += stride)
      rows.back().push_back(f(x.slice(2, i, i + tile_in).slice(3, j, j + tile_in)));
  }
  std::vector<torch::Tensor> stitched_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<torch::Tensor> pieces;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      torch::Tensor& tile = rows[i][j];
      if (i > 0) blend(rows[i - 1][j], tile, 2, blend_extent);
      if (j > 0) blend(rows[i][j - 1], tile, 3, blend_extent);
      pieces.push_back(tile.slice(2, 0, row_limit).slice(3, 0, row_limit));
    }
    stitched_rows.push_back(torch::cat(pieces, 3));
  }
  return torch::cat(stitched_rows, 2);
}

}  // namespace sdtune::models
