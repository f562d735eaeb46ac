#include "io/tensor_io.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/printable.h"

namespace sdtune::io {

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::Bool: return at::kBool;
  }
  throw std::logic_error("unknown dtype");
}

static DType from_scalar_type(at::ScalarType type, const std::string& path, const std::string& name) {
  switch (type) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::Bool;
    default: throw Error(path, "tensor " + in_quotes(name) + ": dtype cannot be stored in safetensors");
  }
}

at::Tensor read_tensor(const SafetensorsFile& file, const TensorEntry& entry, c10::optional<at::ScalarType> dtype) {
  const at::ScalarType stored = to_scalar_type(entry.dtype);
  uint8_t* bytes = file.data(entry);
  at::Tensor t;
  if (entry.numel() == 0) {
    t = torch::empty(entry.shape, torch::dtype(stored));
  } else if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(entry.dtype) == 0) {
    auto keep_alive = file.mapping();
    t = torch::from_blob(bytes, entry.shape, [keep_alive](void*) {}, torch::dtype(stored));
  } else {  // misaligned data cannot be viewed as its type: copy it
    t = torch::empty(entry.shape, torch::dtype(stored));
    std::memcpy(t.data_ptr(), bytes, entry.nbytes());
  }
  if (dtype && *dtype != stored) t = t.to(*dtype);
  return t;
}

at::Tensor read_tensor(const SafetensorsFile& file, const std::string& name, c10::optional<at::ScalarType> dtype) {
  return read_tensor(file, file.at(name), dtype);
}

TensorMap read_all_tensors(const std::string& path, c10::optional<at::ScalarType> float_dtype) {
  SafetensorsFile file(path);
  TensorMap out;
  for (const auto& entry : file.tensors()) {
    at::Tensor t = read_tensor(file, entry);
    if (float_dtype && t.is_floating_point()) t = t.to(*float_dtype);
    out.emplace(entry.name, t);
  }
  return out;
}

void save_tensors(const std::string& path, const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // contiguous CPU copies must outlive the write
  std::vector<TensorBytes> items;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    keep.push_back(t);
    items.push_back({name, from_scalar_type(t.scalar_type(), path, name), t.sizes().vec(), t.data_ptr(),
                     uint64_t(t.nbytes())});
  }
  write_safetensors(path, std::move(items), metadata);
}

bool all_finite(const at::Tensor& tensor) {
  if (!tensor.is_floating_point()) return true;
  constexpr int64_t kPiece = 1 << 22;
  const at::Tensor flat = tensor.reshape(-1);
  for (int64_t start = 0; start < flat.numel(); start += kPiece)
    if (!std::isfinite(flat.slice(0, start, std::min(start + kPiece, flat.numel())).sum(at::kDouble).item<double>())) return false;
  return true;
}

static void fill_from(const SafetensorsSet& files, const std::string& key, at::Tensor& target, bool required) {
  const auto found = files.find(key);
  if (!found.entry) {
    if (required) throw Error(files.describe(), "missing tensor " + files.shown_name(key) + " (weights of another model or config?)");
    return;
  }
  const std::string tensor = files.shown_name(key);
  if (at::IntArrayRef(found.entry->shape) != target.sizes())
    throw Error(found.file->path(), "tensor " + tensor + " has shape " + shape_text(found.entry->shape) +
                                        " but the model built from its config needs " + shape_text(target.sizes().vec()));
  at::Tensor value = read_tensor(*found.file, *found.entry, target.scalar_type());
  // After conversion: fp32 weights over 65504 become infinite in fp16.
  if (!all_finite(value))
    throw Error(found.file->path(), "tensor " + tensor + " holds NaN or infinite values" +
                                        (value.scalar_type() != to_scalar_type(found.entry->dtype) ? " (as " + std::string(c10::toString(value.scalar_type())) + ")" : std::string()));
  if (!target.device().is_cpu()) value = value.to(target.device());
  torch::NoGradGuard no_grad;
  target.set_data(value);
}

void load_module_weights(torch::nn::Module& module, const SafetensorsSet& files, const std::string& prefix) {
  for (auto& item : module.named_parameters()) fill_from(files, prefix + item.key(), item.value(), true);
  for (auto& item : module.named_buffers()) fill_from(files, prefix + item.key(), item.value(), false);
}

}  // namespace sdtune::io
