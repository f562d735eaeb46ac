#include "core/build_info.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include "core/torch_compat.h"
#include "kernels/onednn_convolution.h"

namespace sdtune {

std::string build_description() {
  std::string cuda = "no CUDA";
  if (SDTUNE_TORCH_CUDA) {
    // hasCUDA() is false without a driver or GPU; only then is counting devices safe and quiet.
    const auto gpus = at::hasCUDA() ? torch::cuda::device_count() : 0;
    cuda = "CUDA compiled in: " + std::to_string(gpus) + (gpus == 1 ? " GPU" : " GPUs") + " visible";
  }
  return "sdtune " SDTUNE_VERSION " (LibTorch " + compat::libtorch_version() + ", " + cuda + ", oneDNN kernels " +
         (kernels::onednn_available() ? "on" : "off") + ")";
}

}  // namespace sdtune
