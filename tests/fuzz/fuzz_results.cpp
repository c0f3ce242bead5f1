// libFuzzer target: the results reader (core/results.h) on any bytes, through
// a file as memfront reads one: read_results, read_results_outline (which
// skips trial lines by their "kind"), and scan_results from the start.
// Anything but InputError (the one-line refusal) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/results.h"

namespace {

const std::filesystem::path& input_path() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("memfront-fuzz-results-" + std::to_string(::getpid()) + ".jsonl");
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(input_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    memfront::read_results(input_path());
  } catch (const memfront::InputError&) {
  }
  try {
    memfront::read_results_outline(input_path());
  } catch (const memfront::InputError&) {
  }
  memfront::scan_results(input_path());  // reports problems instead of throwing
  return 0;
}
