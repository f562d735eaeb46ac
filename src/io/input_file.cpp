#include "io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <map>
#include <utility>

#include "core/error.h"

namespace sdtune::io {

namespace {

std::mutex inputs_mutex;
// Files read, by device and inode, with the change time they had: an inode number freed by deleting
// a file this run read (a pruned checkpoint) and reused by a file it writes later is another file.
// One entry per inode, so rereading a rewritten file (a server, a fuzzer) does not grow the table.
using ChangeTime = std::pair<time_t, long>;
std::map<std::pair<dev_t, ino_t>, ChangeTime>& inputs() {
  static std::map<std::pair<dev_t, ino_t>, ChangeTime> files;
  return files;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "an unknown kind of file";
}

}  // namespace

InputFile::InputFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting; fstat then
  // refuses it. The flag is cleared again for the regular file that remains.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    throw Error(path, err == ENOENT ? std::string("file not found") : std::string("cannot open: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string kind = kind_of(st.st_mode);
    ::close(fd_);
    fd_ = -1;
    throw Error(path, "is " + kind + ", not a regular file; refusing to read it");
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = uint64_t(st.st_size);
  std::lock_guard<std::mutex> lock(inputs_mutex);
  inputs()[{st.st_dev, st.st_ino}] = {st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_file(const std::string& path, uint64_t max_bytes, const std::string& what) {
  const InputFile file(path);
  if (file.size() > max_bytes)
    throw Error(path, what + " of " + std::to_string(file.size()) + " bytes is over the limit of " + std::to_string(max_bytes) +
                          " bytes");
  std::string bytes(size_t(file.size()), '\0');
  size_t done = 0;
  while (done < bytes.size()) {  // the size may shrink while reading (a file being rewritten): keep what is there
    const ssize_t n = ::read(file.fd(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path, std::string("read failed: ") + std::strerror(errno));
    if (n == 0) break;
    done += size_t(n);
  }
  bytes.resize(done);
  return bytes;
}

std::string read_file_if_exists(const std::string& path, uint64_t max_bytes, const std::string& what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return "";
  return read_file(path, max_bytes, what);
}

bool nests_inside(const std::string& folder, const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code folder_error, file_error;
  const fs::path real_folder = fs::weakly_canonical(folder, folder_error), real_file = fs::weakly_canonical(file, file_error);
  const auto [end, _] = std::mismatch(real_folder.begin(), real_folder.end(), real_file.begin(), real_file.end());
  return !folder_error && !file_error && end == real_folder.end();
}

bool is_input_of_this_run(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  std::lock_guard<std::mutex> lock(inputs_mutex);
  const auto it = inputs().find({st.st_dev, st.st_ino});
  return it != inputs().end() && it->second == ChangeTime{st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
}

}  // namespace sdtune::io
