#include "train/resize.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/printable.h"

namespace sdtune::train {

namespace {

double sinc(double x) { return x == 0 ? 1.0 : std::sin(M_PI * x) / (M_PI * x); }

double filter(Interpolation mode, double x) {
  x = std::fabs(x);
  switch (mode) {
    case Interpolation::Lanczos: return x < 3 ? sinc(x) * sinc(x / 3) : 0;
    case Interpolation::Bicubic: {
      constexpr double a = -0.5;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    }
    case Interpolation::Bilinear: return x < 1 ? 1 - x : 0;
    case Interpolation::Nearest: return 0;
  }
  return 0;
}

double support(Interpolation mode) {
  return mode == Interpolation::Lanczos ? 3 : mode == Interpolation::Bicubic ? 2 : 1;
}

// Resamples along one axis: `in` has `count` lines of `in_size` samples (stride between samples
// `in_step`, between lines `line_step`), written likewise to `out`.
struct Axis {
  std::vector<int64_t> first;
  std::vector<std::vector<double>> weights;
};

Axis axis_weights(int64_t in_size, int64_t out_size, Interpolation mode) {
  Axis axis;
  const double scale = double(in_size) / double(out_size);
  if (mode == Interpolation::Nearest) {
    for (int64_t o = 0; o < out_size; ++o) {
      axis.first.push_back(std::min(in_size - 1, int64_t((double(o) + 0.5) * scale)));
      axis.weights.push_back({1.0});
    }
    return axis;
  }
  const double filter_scale = std::max(1.0, scale);  // widen the kernel when shrinking (antialias)
  const double reach = support(mode) * filter_scale;
  for (int64_t o = 0; o < out_size; ++o) {
    const double center = (double(o) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, int64_t(center - reach + 0.5));
    const int64_t hi = std::min<int64_t>(in_size, int64_t(center + reach + 0.5));
    std::vector<double> w;
    double total = 0;
    for (int64_t i = lo; i < hi; ++i) {
      w.push_back(filter(mode, (double(i) - center + 0.5) / filter_scale));
      total += w.back();
    }
    for (double& v : w) v = total != 0 ? v / total : 0;
    axis.first.push_back(lo);
    axis.weights.push_back(std::move(w));
  }
  return axis;
}

}  // namespace

Interpolation parse_interpolation(const std::string& name, const std::string& flag) {
  if (name == "lanczos") return Interpolation::Lanczos;
  if (name == "bicubic") return Interpolation::Bicubic;
  if (name == "bilinear") return Interpolation::Bilinear;
  if (name == "nearest") return Interpolation::Nearest;
  throw Error(flag, "unknown interpolation " + in_quotes(name) + " (lanczos, bicubic, bilinear or nearest)");
}

FloatImage resize(const io::RgbImage& image, int64_t width, int64_t height, Interpolation mode) {
  if (width <= 0 || height <= 0 || image.width <= 0 || image.height <= 0) throw Error("resize", "empty image");
  const Axis horizontal = axis_weights(image.width, width, mode);
  const Axis vertical = axis_weights(image.height, height, mode);
  // Horizontal pass into [image.height][width][3], then vertical into the result.
  std::vector<double> rows(size_t(image.height * width * 3));
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        const auto& w = horizontal.weights[size_t(x)];
        for (size_t k = 0; k < w.size(); ++k) v += w[k] * image.pixels[size_t(((y * image.width) + horizontal.first[size_t(x)] + int64_t(k)) * 3 + c)];
        rows[size_t((y * width + x) * 3 + c)] = v;
      }
  FloatImage out{width, height, std::vector<float>(size_t(width * height * 3))};
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        const auto& w = vertical.weights[size_t(y)];
        for (size_t k = 0; k < w.size(); ++k) v += w[k] * rows[size_t(((vertical.first[size_t(y)] + int64_t(k)) * width + x) * 3 + c)];
        out.pixels[size_t((y * width + x) * 3 + c)] = float(std::clamp(v, 0.0, 255.0));
      }
  return out;
}

}  // namespace sdtune::train
