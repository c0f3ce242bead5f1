#pragma once
// The CUPTI probe's Range Profiler part (cupti_probe.h says what it profiles
// and why): on one sampled step, DRAM bytes read and written and the
// duration of every kernel, in launch order, through cupti_range_profiler.h
// and the profiler host API (cupti_profiler_host.h). Internal to the probe.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <cuda.h>
#include <cupti_profiler_host.h>
#include <cupti_range_profiler.h>
#include <nlohmann/json.hpp>

namespace memfront::cupti_detail {

// CUPTI's text for a result ("CUPTI error <n>" where it has none).
std::string cupti_text(CUptiResult result);

// One kernel's values; NaN where the metric was not collected.
struct KernelMetrics {
  double bytes_read = NAN;
  double bytes_written = NAN;
  double duration_ns = NAN;
};

class DramProfiler {
 public:
  // Prepares on the calling thread's current device (its context must
  // exist): the chip, which counters it offers, which of the wanted metrics
  // it supports, and the configuration that collects them in one pass. A
  // failure leaves the profiler unusable and says why in errors().
  DramProfiler();
  ~DramProfiler();
  DramProfiler(const DramProfiler&) = delete;
  DramProfiler& operator=(const DramProfiler&) = delete;

  bool usable() const { return usable_; }
  const std::string& chip() const { return chip_; }

  // Starts profiling every kernel launched from now on, after the device is
  // idle; false (with an error) if that failed.
  bool begin();
  // Waits for the device, stops, and evaluates every profiled kernel's metrics.
  std::vector<KernelMetrics> end();

  // {metrics, skipped_metrics: [{metric, reason}], passes, chip_base_metrics,
  //  ranges, ranges_dropped}
  nlohmann::json describe() const;
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  bool ok(CUptiResult result, const char* call);
  void choose_metrics();
  bool build_config();
  void disable();
  std::vector<const char*> metric_names() const;  // metrics_ for CUPTI's parameter structs

  bool usable_ = false;
  bool profiler_initialized_ = false;
  CUcontext context_ = nullptr;
  std::string chip_;
  std::vector<uint8_t> counter_availability_;
  CUpti_Profiler_Host_Object* host_ = nullptr;  // enumerates metrics and evaluates the counter data
  CUpti_RangeProfiler_Object* range_profiler_ = nullptr;
  uint64_t chip_base_metrics_ = 0;
  std::vector<std::string> metrics_;  // collected, in the order of KernelMetrics' fields they fill
  nlohmann::json skipped_ = nlohmann::json::array();
  std::vector<uint8_t> config_;
  uint64_t passes_ = 0;
  std::vector<uint8_t> counter_data_;
  uint64_t ranges_ = 0;
  uint64_t ranges_dropped_ = 0;
  std::vector<std::string> errors_;
};

}  // namespace memfront::cupti_detail
