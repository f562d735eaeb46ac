// The oneDNN convolution path (kernels/onednn_convolution) against
// aten::conv2d.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/common/conv2d.h"
#include "torch_test_util.h"

using sdtune::models::Conv2d;
using sdtune::models::Conv2dOptions;
using sdtune::test::relative_error;

namespace {

struct ConvCase {
  Conv2dOptions options;
  std::vector<int64_t> input;
  int winograd;  // 1: expected when oneDNN is built in, 0: never, -1: oneDNN's
                 // choice
};

torch::Tensor reference(const Conv2d &conv, const torch::Tensor &x) {
  torch::NoGradGuard no_grad;
  return torch::conv2d(x, conv->weight, conv->bias, conv->shape().stride, conv->shape().padding);
}

}  // namespace

TEST(Convolution, OneDnnPathEqualsAtenForEveryLayerKind) {
  torch::manual_seed(3);
  const std::vector<ConvCase> cases = {
      {{32, 48, 3}, {2, 32, 16, 16}, 1},        // 3x3 over 512 output pixels: Winograd
      {{32, 48, 3}, {1, 32, 8, 8}, 0},          // too few pixels: direct
      {{32, 32, 3, 2, 1}, {2, 32, 16, 16}, 0},  // UNet downsampler
      {{32, 32, 3, 2, 0}, {2, 32, 17, 17}, 0},  // VAE downsampler (padded before)
      {{32, 64, 1}, {2, 32, 16, 16}, 0},        // shortcut / proj_in
      {{4, 32, 3}, {2, 4, 24, 24}, -1},         // conv_in: 4 channels (oneDNN's choice)
      {{32, 3, 3}, {1, 32, 9, 7}, 0},           // odd sizes, conv_out
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(std::to_string(c.options.in_channels) + "->" + std::to_string(c.options.out_channels) + " k" +
                 std::to_string(c.options.kernel) + " s" + std::to_string(c.options.stride));
    Conv2d conv(c.options);
    const auto x = torch::randn(c.input);
    const auto expected = reference(conv, x);
    torch::InferenceMode inference;
    const auto out = conv(x);
    ASSERT_EQ(out.sizes(), expected.sizes());
    EXPECT_LT(relative_error(out, expected), c.winograd != 0 ? 1e-5 : 1e-6);
    if (sdtune::kernels::onednn_available() && c.winograd == 1) {
      EXPECT_TRUE(conv->used_winograd());
    }
    if (c.winograd == 0) {
      EXPECT_FALSE(conv->used_winograd());
    }
  }
}

TEST(Convolution, PackedWinogradWeightsFollowInPlaceUpdates) {
  torch::manual_seed(4);
  Conv2d conv(Conv2dOptions{32, 32, 3});
  const auto x = torch::randn({2, 32, 16, 16});
  {
    torch::InferenceMode inference;
    conv(x);  // packs the weights
  }
  {
    torch::NoGradGuard no_grad;  // what a LoRA merge does
    conv->weight.add_(torch::randn_like(conv->weight) * 0.1);
  }
  const auto expected = reference(conv, x);
  torch::InferenceMode inference;
  EXPECT_LT(relative_error(conv(x), expected), 1e-5);
  conv->release_packed_weights();
  EXPECT_LT(relative_error(conv(x), expected), 1e-5);
}

TEST(Convolution, GradientsStillFlowOutsideInferenceMode) {
  torch::manual_seed(5);
  Conv2d conv(Conv2dOptions{16, 16, 3});
  const auto x = torch::randn({2, 16, 16, 16}, torch::requires_grad());
  conv(x).square().sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(conv->used_winograd());
}
