#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

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
