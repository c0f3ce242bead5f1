// libFuzzer target: the study reader (tuner/study.h) on any bytes, then what
// the tuner derives from a study at once: the size of its space, and the
// difference from itself (none).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/json_file.h"
#include "tuner/study.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json spec = memfront::parse_json_text(text, "fuzz");
    const memfront::Study study = memfront::parse_study(spec, "fuzz");
    memfront::space_size(study);
    if (!memfront::study_differences(spec, spec).empty()) std::abort();
  } catch (const memfront::InputError&) {
  }
  return 0;
}
