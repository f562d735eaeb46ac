// The tensors whose shapes a config fixes. Loading compares them with the weight files before the
// model is built, so a config that describes a model far larger than its weights (layers in the
// millions, channels in the billions) fails on a few header lookups instead of allocating it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdtune::models {

constexpr int64_t kAnySize = -1;  // a dimension the signature does not fix

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

using WeightSignature = std::vector<ExpectedTensor>;

}  // namespace sdtune::models
