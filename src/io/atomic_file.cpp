#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "io/input_file.h"

namespace sdtune::io {

void sync_to_disk(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path, std::string("cannot reopen to sync: ") + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(path, std::string("fsync failed: ") + std::strerror(errno));
}

void copy_file_atomically(const std::string& from, const std::string& to) {
  const InputFile in(from);
  write_file_atomically(to, [&](std::ostream& out) {
    std::vector<char> buffer(1 << 20);
    for (;;) {
      const ssize_t n = ::read(in.fd(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(from, std::string("read failed: ") + std::strerror(errno));
      if (n == 0) break;
      out.write(buffer.data(), n);
      if (!out) throw Error(to, std::string("write failed: ") + std::strerror(errno ? errno : EIO));
    }
  });
}

void discard_partial_write(const std::string& partial, const std::string& target, const std::string& what, const std::string& note) {
  std::error_code ignored;
  std::filesystem::remove_all(partial, ignored);
  try {
    throw;
  } catch (const std::filesystem::filesystem_error& e) {
    throw Error(target, "cannot write " + what + ": " + e.code().message() + note);
  } catch (const Error& e) {
    throw Error(target, "cannot write " + what + " (" + std::filesystem::path(e.where()).filename().string() + "): " + e.problem() + note);
  }
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write, OntoInput onto_input) {
  if (onto_input == OntoInput::Refuse && is_input_of_this_run(path))
    throw Error(path, "is a file this command reads; refusing to overwrite it (write the output somewhere else)");
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error(path, std::string("cannot create file: ") + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw Error(path, std::string("write failed: ") + std::strerror(errno ? errno : EIO));
    }
    sync_to_disk(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(path, std::string("cannot rename temporary file into place: ") + std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace sdtune::io
