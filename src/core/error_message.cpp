#include "core/error_message.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <iostream>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/error.h"
#include "core/printable.h"
#include "core/progress.h"

namespace sdtune {

namespace {

// LibTorch's message without "[enforce fail at file.cpp:12] " and without the C++ stack that
// follows it ("Exception raised from ...", "frame #0: ...").
std::string torch_problem(const c10::Error& e) {
  std::string message = e.what_without_backtrace();
  for (const char* cut : {"Exception raised from", "frame #"})
    if (const size_t at = message.find(cut); at != std::string::npos) message.resize(at);
  message = without_library_tag(message, "[enforce fail at ");
  if (const size_t newline = message.find('\n'); newline != std::string::npos) message.resize(newline);
  if (message.find("can't allocate memory") != std::string::npos || message.find("out of memory") != std::string::npos)
    return "out of memory: " + message;
  return "LibTorch could not run this: " + message;
}

}  // namespace

std::string describe_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    return e.what();
  } catch (const c10::Error& e) {
    return torch_problem(e);
  } catch (const std::bad_alloc&) {
    return "out of memory (the input asks for more memory than this machine can give)";
  } catch (const std::length_error&) {
    return "a size in the input is too large to allocate";
  } catch (const nlohmann::json::exception& e) {
    return "unexpected JSON content: " + without_library_tag(e.what(), "[json.exception.");
  } catch (const std::filesystem::filesystem_error& e) {
    return e.path1().string() + ": " + e.code().message();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown failure";
  }
}

void print_error_line(const std::string& message) {
  ProgressBar::end_open_line();
  PrintableOptions options;
  options.max_bytes = 2000;
  std::cerr << "error: " << printable(message, options) << std::endl;
}

}  // namespace sdtune
