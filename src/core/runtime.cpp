#include "core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>

namespace sdtune {

void use_passive_openmp_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  char path[4096];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (length <= 0) return;
  path[length] = '\0';
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv(path, argv);  // the real path keeps the process name; returns only on failure (then run on as is)
}

bool set_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  // Looked up at run time: the BLAS is chosen by Debian's alternatives, not at link time.
  auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!set) return false;
  set(threads);
  return true;
}

void return_free_memory_to_system() {
  using Release = void (*)();
  // Looked up at run time: only the sdtune binary links tcmalloc, tests and benchmarks do not.
  if (auto release = reinterpret_cast<Release>(::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
    release();
    return;
  }
  ::malloc_trim(0);
}

}  // namespace sdtune
