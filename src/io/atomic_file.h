// Writes a file so that readers see either the old file or the complete new one, never a torn write.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace sdtune::io {

// Whether a write may replace a file this run has read (only a file rewritten on purpose, as a
// resumed run's own log). Every other write onto an input is refused: no command overwrites what it reads.
enum class OntoInput { Refuse, Allow };

// Calls `write` with a stream onto `path`.tmp-<pid>, flushes it to disk, then renames it over `path`.
// On any failure (disk full included) the temporary file is removed and an Error naming `path` is thrown.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write,
                           OntoInput onto_input = OntoInput::Refuse);

// Copies `from` (a regular file) to `to` atomically, in 1 MiB pieces; a full disk is an Error naming
// `to` with the system's reason (std::filesystem::copy_file would only say "Input/output error").
void copy_file_atomically(const std::string& from, const std::string& to);

// Call inside a catch block: removes `partial` (the folder or file being written) and throws the
// failure again as one Error naming `target`, "cannot write WHAT (file): problem" + `note`, for our
// Errors and file-system errors (a full disk); any other exception goes on as it is.
[[noreturn]] void discard_partial_write(const std::string& partial, const std::string& target, const std::string& what,
                                        const std::string& note = "");

// fsync of a file or folder (a folder's entries: renames inside it become durable).
void sync_to_disk(const std::string& path);

}  // namespace sdtune::io
