// What a failure says to the user: one line, in our words. Library exceptions that reach a front end
// (LibTorch's enforce messages and stacks, nlohmann's exception ids, std::bad_alloc) are translated
// here, and everything is escaped and bounded, since messages quote names and values from files.
#pragma once
#include <exception>
#include <string>

namespace sdtune {

// The message of the exception in flight (call from a catch block), without "error: ".
std::string describe_current_exception();

// "error: <message>" as one line, ending any progress line first, on stderr.
void print_error_line(const std::string& message);

}  // namespace sdtune
