// A write wrapper for tests on machines where no small tmpfs can be mounted: loaded with LD_PRELOAD,
// it lets write()/writev() into files under $SDTUNE_TEST_ENOSPC_DIR succeed for the first
// $SDTUNE_TEST_ENOSPC_BYTES bytes, then fails them with ENOSPC, as a full disk does.
#include <dlfcn.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::atomic<long long> written{0};

// True when `fd` is a file under the watched folder and the budget is spent (counting `bytes`).
bool disk_full(int fd, size_t bytes) {
  const char* dir = std::getenv("SDTUNE_TEST_ENOSPC_DIR");
  const char* budget = std::getenv("SDTUNE_TEST_ENOSPC_BYTES");
  if (!dir || !budget) return false;
  char link[64], path[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = '\0';
  if (std::strncmp(path, dir, std::strlen(dir)) != 0) return false;
  return written.fetch_add((long long)bytes) + (long long)bytes > std::atoll(budget);
}

}  // namespace

extern "C" ssize_t write(int fd, const void* data, size_t bytes) {
  static auto real = reinterpret_cast<ssize_t (*)(int, const void*, size_t)>(::dlsym(RTLD_NEXT, "write"));
  if (disk_full(fd, bytes)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, data, bytes);
}

extern "C" ssize_t writev(int fd, const struct iovec* parts, int count) {
  static auto real = reinterpret_cast<ssize_t (*)(int, const struct iovec*, int)>(::dlsym(RTLD_NEXT, "writev"));
  size_t bytes = 0;
  for (int i = 0; i < count; ++i) bytes += parts[i].iov_len;
  if (disk_full(fd, bytes)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, parts, count);
}
