// The oneDNN CPU engine that sdtune's kernels share. Included only by the
// kernels' .cpp files: dnnl.hpp stays out of every other translation unit.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace sdtune::kernels {

inline dnnl::engine &cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

}  // namespace sdtune::kernels
