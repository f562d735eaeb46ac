// Writes a file so that readers see either the old file or the complete new one, never a torn write.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace sdtune::io {

// Calls `write` with a stream onto `path`.tmp-<pid>, flushes it to disk, then renames it over `path`.
// On any failure the temporary file is removed and an Error naming `path` is thrown.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// fsync of a file or folder (a folder's entries: renames inside it become durable).
void sync_to_disk(const std::string& path);

}  // namespace sdtune::io
