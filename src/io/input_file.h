// Opening the files a user names. Only regular files are read: a FIFO would block the open, a device
// such as /dev/zero never ends, a folder is not a file. Reads are bounded, and every file read is
// remembered so that no command writes onto a file it reads (see is_input_of_this_run).
#pragma once
#include <cstdint>
#include <string>

namespace sdtune::io {

// Limits on whole-file reads, by what the file is. A real file of each kind is far smaller.
constexpr uint64_t kMaxJsonFileBytes = 64ull << 20;     // vocab.json of CLIP: 1.6 MB
constexpr uint64_t kMaxTextFileBytes = 1ull << 30;      // metadata.jsonl/.csv of a large dataset
constexpr uint64_t kMaxCaptionFileBytes = 1ull << 20;   // one kohya .txt caption
constexpr uint64_t kMaxImageFileBytes = 1ull << 30;     // one PNG/JPEG/WebP

// An open read-only descriptor of a regular file, closed on destruction. Throws Error(path, ...) when
// the path is missing, unreadable, or not a regular file (named: FIFO, device, socket, folder).
class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole file, refused when larger than `max_bytes` (the message names `what`, e.g. "JSON file").
std::string read_file(const std::string& path, uint64_t max_bytes, const std::string& what);

// read_file, or "" when nothing is at `path` (optional files: logs, .gitattributes).
std::string read_file_if_exists(const std::string& path, uint64_t max_bytes, const std::string& what);

// True when `file`, with links and ".." resolved, lies inside `folder`: what a name that comes from a
// prompt or a folder listing may open without reading files elsewhere.
bool nests_inside(const std::string& folder, const std::string& file);

// True when `path` is a file this process has opened for reading (same device and inode).
bool is_input_of_this_run(const std::string& path);

}  // namespace sdtune::io
