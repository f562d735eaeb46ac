// The oneDNN linear path (kernels/onednn_linear) against aten::linear.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/onednn_convolution.h"
#include "kernels/onednn_linear.h"
#include "models/common/linear.h"
#include "torch_test_util.h"

using sdtune::models::Linear;
using sdtune::test::relative_error;

TEST(Linear, OneDnnPathEqualsAtenForEveryInputShape) {
  torch::manual_seed(4);
  struct Case {
    int64_t in, out;
    bool bias;
    std::vector<int64_t> input;
  };
  const std::vector<Case> cases{{320, 2560, true, {2, 256, 320}},  // GEGLU projection
                                {1280, 320, true, {512, 1280}},
                                {1024, 320, false, {2, 77, 1024}},  // cross-attention keys
                                {320, 1280, true, {2, 320}},        // time embedding
                                {7, 5, true, {3, 1, 7}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.in) + "->" + std::to_string(c.out));
    Linear layer(c.in, c.out, c.bias);
    const auto x = torch::randn(c.input);
    torch::Tensor expected;
    {
      torch::NoGradGuard no_grad;
      expected = torch::nn::functional::linear(x, layer->weight, layer->bias);
    }
    torch::InferenceMode inference;
    if (sdtune::kernels::onednn_available()) {
      EXPECT_TRUE(sdtune::kernels::onednn_linear(x, layer->weight, layer->bias).defined());
    }
    const auto out = layer->forward(x);
    ASSERT_EQ(out.sizes(), expected.sizes());
    EXPECT_LT(relative_error(out, expected), 1e-6);
    // A transposed (non-contiguous) input gives the same rows.
    const auto transposed = x.transpose(0, -2).contiguous().transpose(0, -2);
    EXPECT_LT(relative_error(layer->forward(transposed), expected), 1e-6);
  }
}

// LoRA training: the base weight frozen, the gradient flowing to the input through oneDNN.
TEST(Linear, FrozenWeightPassesTheInputGradientLikeAten) {
  torch::manual_seed(8);
  for (const bool with_bias : {true, false}) {
    SCOPED_TRACE(with_bias ? "with bias" : "without bias");
    Linear layer(320, 1280, with_bias);
    for (auto& p : layer->parameters()) p.requires_grad_(false);
    const auto x = torch::randn({2, 64, 320}, torch::requires_grad());
    const auto x_ref = x.detach().clone().requires_grad_(true);
    const auto upstream = torch::randn({2, 64, 1280});
    const auto y = layer->forward(x);
    const auto y_ref = torch::nn::functional::linear(x_ref, layer->weight, layer->bias);
    EXPECT_LT(relative_error(y, y_ref), 1e-6);
    (y * upstream).sum().backward();
    (y_ref * upstream).sum().backward();
    EXPECT_LT(relative_error(x.grad(), x_ref.grad()), 1e-6);
    EXPECT_FALSE(layer->weight.grad().defined());
  }
}

TEST(Linear, DeclinesWhatItCannotRunAndGradientsStillFlow) {
  Linear layer(16, 8);
  const auto x = torch::randn({4, 16}, torch::requires_grad());
  {
    torch::InferenceMode inference;
    EXPECT_FALSE(sdtune::kernels::onednn_linear(x.to(torch::kDouble), layer->weight.to(torch::kDouble), {}).defined());
    EXPECT_FALSE(sdtune::kernels::onednn_linear(torch::randn({4, 15}), layer->weight, layer->bias).defined());
  }
  layer->forward(x).sum().backward();  // outside inference mode: aten, with autograd
  EXPECT_TRUE(layer->weight.grad().defined());
  EXPECT_LT(relative_error(x.grad(), layer->weight.sum(0).expand({4, 16})), 1e-6);
}
