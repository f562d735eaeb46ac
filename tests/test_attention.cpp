// The attention kernel against one softmax over all keys, where the query slicing of LibTorch 1.x
// (score budget 64 MB) cuts the queries into several slices.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/common/attention.h"
#include "torch_test_util.h"

using sdtune::models::attention_kernel;
using sdtune::test::relative_error;

namespace {

// One softmax over all keys, unsliced, in fp32.
torch::Tensor reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const auto probs = torch::matmul(q, k.transpose(-1, -2)).div(std::sqrt(double(q.size(-1)))).softmax(-1);
  return torch::matmul(probs, v);
}

}  // namespace

TEST(Attention, SlicedQueriesEqualOneSoftmaxOverAllKeys) {
  torch::manual_seed(5);
  // 16384 keys: one query row of scores is 64 kB, so 1100 queries take two slices (1024 and 76).
  const auto q = torch::randn({1, 1, 1100, 8}), k = torch::randn({1, 1, 16384, 8}), v = torch::randn({1, 1, 16384, 8});
  torch::InferenceMode inference;
  const auto out = attention_kernel(q, k, v, /*upcast=*/false);
  ASSERT_EQ(out.sizes(), q.sizes());
  EXPECT_LT(relative_error(out, reference(q, k, v)), 1e-5);
}

TEST(Attention, UpcastHalfInputsKeepFloatAccuracy) {
  torch::manual_seed(6);
  const auto q = torch::randn({2, 3, 300, 16}), k = torch::randn({2, 3, 77, 16}), v = torch::randn({2, 3, 77, 16});
  torch::InferenceMode inference;
  const auto out =
      attention_kernel(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16), /*upcast=*/true);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LT(relative_error(out, reference(q, k, v)), 2e-2);
}
