#pragma once
// The message of the InputError a call throws, for tests of one-line errors;
// a call that throws none fails the test.
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

inline std::string input_error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const memfront::InputError& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}
