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
  const JsonField o(j, where);
  o.only_keys({"format", "measured", "host", "created", "gemm_flops_per_s", "attention_flops_per_s",
               "memory_bytes_per_s", "link_latency_s", "link_bytes_per_s"});
  const std::string expected_format = "\"" + std::string(kCalibrationFormat) + "\"";
  if (!o.has("format")) {
    o.fail_below("/format", "missing (expected " + expected_format +
                                "; a file from before calibration files were versioned: run memfront calibrate again)");
  }
  if (const std::string format = o.string_at("format"); format != kCalibrationFormat) {
    o.fail_below("/format", "expected " + expected_format + ", got \"" + format + "\"");
  }
  Calibration c;
  c.measured = o.bool_at("measured");
  c.host = o.string_at("host");
  c.created = o.string_at("created");
  c.gemm_flops_per_s = o.positive_at("gemm_flops_per_s");
  c.attention_flops_per_s = o.positive_at("attention_flops_per_s");
  c.memory_bytes_per_s = o.positive_at("memory_bytes_per_s");
  c.link_latency_s = o.non_negative_at("link_latency_s");
  c.link_bytes_per_s = o.positive_at("link_bytes_per_s");
  return c;
}

void save_calibration(const std::filesystem::path& path, const Calibration& calibration) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  replace_file_atomically(path, to_json(calibration).dump(2) + "\n");
}

}  // namespace memfront
