#include "fuzz_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace sdtune::fuzz {

namespace {

void remove_scratch_dir() {
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir(), ec);
}

}  // namespace

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/sdtune-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    return pattern;
  }();
  static const bool cleanup_registered = (std::atexit(remove_scratch_dir), true);
  (void)cleanup_registered;
  return dir;
}

bool make_scratch_dirs(const std::string& relative_dir) {
  std::filesystem::create_directories(scratch_dir() + "/" + relative_dir);
  return true;
}

std::string write_scratch_file(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out.flush()) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t count) {
  std::vector<std::string> parts(count);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t begin = 0;
  for (size_t i = 0; i < count && begin <= input.size(); ++i) {
    const size_t end = i + 1 == count ? std::string_view::npos : input.find(kPartSeparator, begin);
    parts[i] = std::string(input.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return parts;
}

void check_error_message(const sdtune::Error& e) {
  const std::string_view message = e.what();
  if (message.empty() || message.size() > kMaxErrorMessageBytes) {
    std::fprintf(stderr, "sdtune::Error message of %zu bytes (allowed 1..%zu): %.300s\n", message.size(),
                 kMaxErrorMessageBytes, e.what());
    std::abort();
  }
}

}  // namespace sdtune::fuzz
