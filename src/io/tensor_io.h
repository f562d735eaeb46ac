// safetensors <-> LibTorch tensors.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>

#include <torch/nn/module.h>

#include <map>
#include <string>

#include "io/safetensors.h"

namespace sdtune::io {

using TensorMap = std::map<std::string, at::Tensor>;

// One tensor, converted to `dtype` when given. Without conversion (and with aligned data) the tensor
// is a zero-copy view of the copy-on-write mapping, which it keeps alive.
at::Tensor read_tensor(const SafetensorsFile& file, const TensorEntry& entry,
                       c10::optional<at::ScalarType> dtype = c10::nullopt);
at::Tensor read_tensor(const SafetensorsFile& file, const std::string& name,
                       c10::optional<at::ScalarType> dtype = c10::nullopt);

// Every tensor of a file (floating tensors converted to `float_dtype` when given).
TensorMap read_all_tensors(const std::string& path, c10::optional<at::ScalarType> float_dtype = c10::nullopt);

// Writes contiguous CPU copies of `tensors` atomically.
void save_tensors(const std::string& path, const TensorMap& tensors,
                  const std::map<std::string, std::string>& metadata = {});

at::ScalarType to_scalar_type(DType dtype);

// False when a floating tensor holds NaN or an infinity (also one reached by overflowing its dtype).
// Sums pieces of 4M elements in double: one pass, a bounded temporary, no overflow of honest sums.
bool all_finite(const at::Tensor& tensor);

// Fills every parameter (and every buffer the files have) of `module` from the tensor named
// prefix + its name, converted to the parameter's dtype. A missing tensor or a shape that does not
// fit is an Error naming the file and the tensor. Tensors in the files that the module lacks are
// ignored (e.g. transformers' position_ids buffer).
void load_module_weights(torch::nn::Module& module, const SafetensorsSet& files, const std::string& prefix);

}  // namespace sdtune::io
