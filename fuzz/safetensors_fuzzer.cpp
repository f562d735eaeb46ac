// The safetensors reader (header JSON, dtypes, shapes, offsets, metadata) and the conversion of every
// entry to a tensor with its finiteness check, as model and LoRA loading do.
#include <ATen/ATen.h>

#include "fuzz_support.h"
#include "io/safetensors.h"
#include "io/tensor_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const std::string path =
      fuzz::write_scratch_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_success_or_error([&] {
    const io::SafetensorsFile file(path);
    for (const io::TensorEntry& entry : file.tensors()) {
      const at::Tensor tensor = io::read_tensor(file, entry);
      if (at::isFloatingType(tensor.scalar_type())) {
        io::all_finite(tensor);
        io::read_tensor(file, entry, at::kFloat);
      }
    }
  });
  return 0;
}
