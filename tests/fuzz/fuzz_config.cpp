// libFuzzer target: the config reader (core/config.h) on any bytes, and the
// normalized config written back and read again, which must give the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const memfront::Config config = memfront::parse_config_text(text, "fuzz");
    const memfront::Config again = memfront::parse_config(memfront::to_json(config), "fuzz: normalized");
    if (memfront::config_id(again) != memfront::config_id(config)) std::abort();
  } catch (const memfront::InputError&) {
  }
  return 0;
}
