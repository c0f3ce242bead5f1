#include "core/calibration.h"

#include <filesystem>

#include "core/jsonl.h"
#include "core/strict_json.h"

namespace memfront {

using nlohmann::json;

json to_json(const Calibration& c) {
  return {{"format", kCalibrationFormat},
          {"measured", c.measured},
          {"host", c.host},
          {"created", c.created},
          {"gemm_flops_per_s", c.gemm_flops_per_s},
          {"attention_flops_per_s", c.attention_flops_per_s},
          {"memory_bytes_per_s", c.memory_bytes_per_s},
          {"link_latency_s", c.link_latency_s},
          {"link_bytes_per_s", c.link_bytes_per_s}};
}

Calibration calibration_from_json(const json& j, std::string_view where) {
  const StrictObject o(j, where, "",
                       {"format", "measured", "host", "created", "gemm_flops_per_s", "attention_flops_per_s",
                        "memory_bytes_per_s", "link_latency_s", "link_bytes_per_s"});
  if (!j.contains("format")) {
    o.fail(o.at("format"), "missing (expected \"" + std::string(kCalibrationFormat) +
                               "\"; a file from before calibration files were versioned: run memfront calibrate again)");
  }
  if (const std::string format = o.text("format"); format != kCalibrationFormat) {
    o.fail(o.at("format"), "expected \"" + std::string(kCalibrationFormat) + "\", got \"" + format + "\"");
  }
  Calibration c;
  c.measured = o.boolean("measured");
  c.host = o.text("host");
  c.created = o.text("created");
  c.gemm_flops_per_s = o.positive("gemm_flops_per_s");
  c.attention_flops_per_s = o.positive("attention_flops_per_s");
  c.memory_bytes_per_s = o.positive("memory_bytes_per_s");
  c.link_latency_s = o.non_negative("link_latency_s");
  c.link_bytes_per_s = o.positive("link_bytes_per_s");
  return c;
}

void save_calibration(const std::filesystem::path& path, const Calibration& calibration) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  replace_file_atomically(path, to_json(calibration).dump(2) + "\n");
}

}  // namespace memfront
