#pragma once
// One error type for bad input: its message is a single line that names the
// file, JSON pointer or field and says what was expected. Mains print it and
// exit with status 2; nothing else catches it.
#include <stdexcept>
#include <string>

namespace memfront {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace memfront
