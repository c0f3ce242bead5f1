#include "probes/cupti_dram_profiler.h"

#include <cuda_runtime.h>
#include <cudaTypedefs.h>
#include <cupti_profiler_target.h>
#include <cupti_result.h>
#include <cupti_target.h>

#include <set>

namespace memfront::cupti_detail {

namespace {

// What the probe asks for, in the order of KernelMetrics' fields.
const char* const kWantedMetrics[] = {"dram__bytes_read.sum", "dram__bytes_write.sum", "gpu__time_duration.sum"};
// Ranges (kernels) of the profiled step; more are dropped.
constexpr uint64_t kMaxKernels = 8192;

// A CUPTI parameter struct as every call expects it: zeroed, its size set.
template <class Params>
Params cupti_params(size_t struct_size) {
  Params params{};
  params.structSize = struct_size;
  return params;
}

// "dram__bytes_read" of "dram__bytes_read.sum": the name the chip lists.
std::string base_name(const std::string& metric) { return metric.substr(0, metric.find('.')); }

// The calling thread's current context. Asked of the driver through the
// runtime, so that memfront does not link libcuda (absent where there is no GPU).
CUcontext current_context(std::string& error) {
  void* function = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t status =
      cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &function, 4000, cudaEnableDefault, &found);
  if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
    error = std::string("cudaGetDriverEntryPointByVersion(cuCtxGetCurrent): ") + cudaGetErrorString(status);
    return nullptr;
  }
  CUcontext context = nullptr;
  if (reinterpret_cast<PFN_cuCtxGetCurrent_v4000>(function)(&context) != CUDA_SUCCESS || context == nullptr) {
    error = "cuCtxGetCurrent: no current CUDA context (make the device current before the probe)";
    return nullptr;
  }
  return context;
}

}  // namespace

std::string cupti_text(CUptiResult result) {
  const char* text = nullptr;
  cuptiGetResultString(result, &text);
  return text != nullptr ? text : "CUPTI error " + std::to_string(static_cast<int>(result));
}

DramProfiler::DramProfiler() {
  auto initialize = cupti_params<CUpti_Profiler_Initialize_Params>(CUpti_Profiler_Initialize_Params_STRUCT_SIZE);
  if (!ok(cuptiProfilerInitialize(&initialize), "cuptiProfilerInitialize")) return;
  profiler_initialized_ = true;

  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    errors_.push_back("range profiler: cudaGetDevice failed");
    return;
  }
  auto chip = cupti_params<CUpti_Device_GetChipName_Params>(CUpti_Device_GetChipName_Params_STRUCT_SIZE);
  chip.deviceIndex = static_cast<size_t>(device);
  if (!ok(cuptiDeviceGetChipName(&chip), "cuptiDeviceGetChipName")) return;
  chip_ = chip.pChipName;

  std::string context_error;
  context_ = current_context(context_error);
  if (context_ == nullptr) {
    errors_.push_back("range profiler: " + context_error);
    return;
  }
  // Which counters this context may read: where profiling is not permitted,
  // this is where CUPTI says so (CUPTI_ERROR_INSUFFICIENT_PRIVILEGES).
  auto availability = cupti_params<CUpti_Profiler_GetCounterAvailability_Params>(
      CUpti_Profiler_GetCounterAvailability_Params_STRUCT_SIZE);
  availability.ctx = context_;
  if (!ok(cuptiProfilerGetCounterAvailability(&availability), "cuptiProfilerGetCounterAvailability")) return;
  counter_availability_.resize(availability.counterAvailabilityImageSize);
  availability.pCounterAvailabilityImage = counter_availability_.data();
  if (!ok(cuptiProfilerGetCounterAvailability(&availability), "cuptiProfilerGetCounterAvailability")) return;

  auto host = cupti_params<CUpti_Profiler_Host_Initialize_Params>(CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE);
  host.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
  host.pChipName = chip_.c_str();
  host.pCounterAvailabilityImage = counter_availability_.data();
  if (!ok(cuptiProfilerHostInitialize(&host), "cuptiProfilerHostInitialize")) return;
  host_ = host.pHostObject;

  choose_metrics();
  if (metrics_.empty()) {
    errors_.push_back("range profiler: the chip " + chip_ + " supports none of the wanted metrics");
    return;
  }
  usable_ = build_config();
}

DramProfiler::~DramProfiler() {
  disable();
  if (host_ != nullptr) {
    auto deinitialize = cupti_params<CUpti_Profiler_Host_Deinitialize_Params>(
        CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE);
    deinitialize.pHostObject = host_;
    cuptiProfilerHostDeinitialize(&deinitialize);
  }
  if (profiler_initialized_) {
    auto deinitialize = cupti_params<CUpti_Profiler_DeInitialize_Params>(
        CUpti_Profiler_DeInitialize_Params_STRUCT_SIZE);
    cuptiProfilerDeInitialize(&deinitialize);
  }
}

bool DramProfiler::ok(CUptiResult result, const char* call) {
  if (result == CUPTI_SUCCESS) return true;
  errors_.push_back(std::string("range profiler: ") + call + ": " + cupti_text(result));
  return false;
}

// The chip's base metrics, enumerated by type; a wanted metric is kept when
// its base is among them and CUPTI accepts its full name (with the rollup).
void DramProfiler::choose_metrics() {
  std::set<std::string> base_metrics;
  for (CUpti_MetricType type : {CUPTI_METRIC_TYPE_COUNTER, CUPTI_METRIC_TYPE_RATIO, CUPTI_METRIC_TYPE_THROUGHPUT}) {
    auto listed = cupti_params<CUpti_Profiler_Host_GetBaseMetrics_Params>(
        CUpti_Profiler_Host_GetBaseMetrics_Params_STRUCT_SIZE);
    listed.pHostObject = host_;
    listed.metricType = type;
    if (!ok(cuptiProfilerHostGetBaseMetrics(&listed), "cuptiProfilerHostGetBaseMetrics")) return;
    for (size_t i = 0; i < listed.numMetrics; ++i) base_metrics.insert(listed.ppMetricNames[i]);
  }
  chip_base_metrics_ = base_metrics.size();
  for (const char* metric : kWantedMetrics) {
    if (base_metrics.count(base_name(metric)) == 0) {
      const std::string reason = "not among the " + std::to_string(base_metrics.size()) + " base metrics of " + chip_;
      skipped_.push_back({{"metric", metric}, {"reason", reason}});
      continue;
    }
    auto properties = cupti_params<CUpti_Profiler_Host_GetMetricProperties_Params>(
        CUpti_Profiler_Host_GetMetricProperties_Params_STRUCT_SIZE);
    properties.pHostObject = host_;
    properties.pMetricName = metric;
    const CUptiResult accepted = cuptiProfilerHostGetMetricProperties(&properties);
    if (accepted != CUPTI_SUCCESS) {
      skipped_.push_back({{"metric", metric}, {"reason", cupti_text(accepted)}});
      continue;
    }
    metrics_.push_back(metric);
  }
}

// The config image for metrics_, in one pass: a training step cannot be
// replayed, and kernel replay would re-execute NCCL's kernels, so metrics
// that push the schedule past one pass are left out, last first.
bool DramProfiler::build_config() {
  while (!metrics_.empty()) {
    std::vector<const char*> names = metric_names();

    auto scheduler = cupti_params<CUpti_Profiler_Host_Initialize_Params>(
        CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE);
    scheduler.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
    scheduler.pChipName = chip_.c_str();
    scheduler.pCounterAvailabilityImage = counter_availability_.data();
    if (!ok(cuptiProfilerHostInitialize(&scheduler), "cuptiProfilerHostInitialize")) return false;
    auto add = cupti_params<CUpti_Profiler_Host_ConfigAddMetrics_Params>(
        CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE);
    add.pHostObject = scheduler.pHostObject;
    add.ppMetricNames = names.data();
    add.numMetrics = names.size();
    auto size = cupti_params<CUpti_Profiler_Host_GetConfigImageSize_Params>(
        CUpti_Profiler_Host_GetConfigImageSize_Params_STRUCT_SIZE);
    size.pHostObject = scheduler.pHostObject;
    bool built = ok(cuptiProfilerHostConfigAddMetrics(&add), "cuptiProfilerHostConfigAddMetrics") &&
                 ok(cuptiProfilerHostGetConfigImageSize(&size), "cuptiProfilerHostGetConfigImageSize");
    if (built) {
      config_.assign(size.configImageSize, 0);
      auto image = cupti_params<CUpti_Profiler_Host_GetConfigImage_Params>(
          CUpti_Profiler_Host_GetConfigImage_Params_STRUCT_SIZE);
      image.pHostObject = scheduler.pHostObject;
      image.configImageSize = config_.size();
      image.pConfigImage = config_.data();
      built = ok(cuptiProfilerHostGetConfigImage(&image), "cuptiProfilerHostGetConfigImage");
    }
    auto release = cupti_params<CUpti_Profiler_Host_Deinitialize_Params>(
        CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE);
    release.pHostObject = scheduler.pHostObject;
    cuptiProfilerHostDeinitialize(&release);
    if (!built) return false;

    auto passes = cupti_params<CUpti_Profiler_Host_GetNumOfPasses_Params>(
        CUpti_Profiler_Host_GetNumOfPasses_Params_STRUCT_SIZE);
    passes.configImageSize = config_.size();
    passes.pConfigImage = config_.data();
    if (!ok(cuptiProfilerHostGetNumOfPasses(&passes), "cuptiProfilerHostGetNumOfPasses")) return false;
    passes_ = passes.numOfPasses;
    if (passes_ <= 1) return true;
    skipped_.push_back({{"metric", metrics_.back()},
                        {"reason", "with the others it needs " + std::to_string(passes_) +
                                       " passes; a training step is profiled in one"}});
    metrics_.pop_back();
  }
  errors_.push_back("range profiler: no wanted metric fits in one pass on " + chip_);
  return false;
}

bool DramProfiler::begin() {
  if (!usable_ || range_profiler_ != nullptr) return false;
  if (cudaDeviceSynchronize() != cudaSuccess) {
    errors_.push_back("range profiler: cudaDeviceSynchronize failed before the profiled step");
    return false;
  }
  auto enable = cupti_params<CUpti_RangeProfiler_Enable_Params>(CUpti_RangeProfiler_Enable_Params_STRUCT_SIZE);
  enable.ctx = context_;
  if (!ok(cuptiRangeProfilerEnable(&enable), "cuptiRangeProfilerEnable")) return false;
  range_profiler_ = enable.pRangeProfilerObject;

  std::vector<const char*> names = metric_names();
  auto size = cupti_params<CUpti_RangeProfiler_GetCounterDataSize_Params>(
      CUpti_RangeProfiler_GetCounterDataSize_Params_STRUCT_SIZE);
  size.pRangeProfilerObject = range_profiler_;
  size.pMetricNames = names.data();
  size.numMetrics = names.size();
  size.maxNumOfRanges = kMaxKernels;
  size.maxNumRangeTreeNodes = static_cast<uint32_t>(kMaxKernels);
  if (!ok(cuptiRangeProfilerGetCounterDataSize(&size), "cuptiRangeProfilerGetCounterDataSize")) {
    disable();
    return false;
  }
  counter_data_.assign(size.counterDataSize, 0);
  auto image = cupti_params<CUpti_RangeProfiler_CounterDataImage_Initialize_Params>(
      CUpti_RangeProfiler_CounterDataImage_Initialize_Params_STRUCT_SIZE);
  image.pRangeProfilerObject = range_profiler_;
  image.counterDataSize = counter_data_.size();
  image.pCounterData = counter_data_.data();
  if (!ok(cuptiRangeProfilerCounterDataImageInitialize(&image), "cuptiRangeProfilerCounterDataImageInitialize")) {
    disable();
    return false;
  }

  // Auto ranges: one range per kernel, numbered in launch order.
  auto config = cupti_params<CUpti_RangeProfiler_SetConfig_Params>(CUpti_RangeProfiler_SetConfig_Params_STRUCT_SIZE);
  config.pRangeProfilerObject = range_profiler_;
  config.configSize = config_.size();
  config.pConfig = config_.data();
  config.counterDataImageSize = counter_data_.size();
  config.pCounterDataImage = counter_data_.data();
  config.range = CUPTI_AutoRange;
  config.replayMode = CUPTI_KernelReplay;
  config.maxRangesPerPass = kMaxKernels;
  config.numNestingLevels = 1;
  config.minNestingLevel = 1;
  config.passIndex = 0;
  config.targetNestingLevel = 1;
  if (!ok(cuptiRangeProfilerSetConfig(&config), "cuptiRangeProfilerSetConfig")) {
    disable();
    return false;
  }

  auto start = cupti_params<CUpti_RangeProfiler_Start_Params>(CUpti_RangeProfiler_Start_Params_STRUCT_SIZE);
  start.pRangeProfilerObject = range_profiler_;
  if (!ok(cuptiRangeProfilerStart(&start), "cuptiRangeProfilerStart")) {
    disable();
    return false;
  }
  return true;
}

std::vector<KernelMetrics> DramProfiler::end() {
  std::vector<KernelMetrics> kernels;
  if (range_profiler_ == nullptr) return kernels;
  if (cudaDeviceSynchronize() != cudaSuccess) errors_.push_back("range profiler: cudaDeviceSynchronize failed");

  auto stop = cupti_params<CUpti_RangeProfiler_Stop_Params>(CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE);
  stop.pRangeProfilerObject = range_profiler_;
  if (!ok(cuptiRangeProfilerStop(&stop), "cuptiRangeProfilerStop")) {
    disable();
    return kernels;
  }
  if (!stop.isAllPassSubmitted) {
    errors_.push_back("range profiler: not every pass was submitted; values may be partial");
  }

  auto decode = cupti_params<CUpti_RangeProfiler_DecodeData_Params>(CUpti_RangeProfiler_DecodeData_Params_STRUCT_SIZE);
  decode.pRangeProfilerObject = range_profiler_;
  if (!ok(cuptiRangeProfilerDecodeData(&decode), "cuptiRangeProfilerDecodeData")) {
    disable();
    return kernels;
  }
  ranges_dropped_ = decode.numOfRangeDropped;

  auto info = cupti_params<CUpti_RangeProfiler_GetCounterDataInfo_Params>(
      CUpti_RangeProfiler_GetCounterDataInfo_Params_STRUCT_SIZE);
  info.pCounterDataImage = counter_data_.data();
  info.counterDataImageSize = counter_data_.size();
  if (!ok(cuptiRangeProfilerGetCounterDataInfo(&info), "cuptiRangeProfilerGetCounterDataInfo")) {
    disable();
    return kernels;
  }
  ranges_ = info.numTotalRanges;

  std::vector<const char*> names = metric_names();
  std::vector<double> values(names.size());
  for (size_t range = 0; range < ranges_; ++range) {
    auto evaluate = cupti_params<CUpti_Profiler_Host_EvaluateToGpuValues_Params>(
        CUpti_Profiler_Host_EvaluateToGpuValues_Params_STRUCT_SIZE);
    evaluate.pHostObject = host_;
    evaluate.pCounterDataImage = counter_data_.data();
    evaluate.counterDataImageSize = counter_data_.size();
    evaluate.rangeIndex = range;
    evaluate.ppMetricNames = names.data();
    evaluate.numMetrics = names.size();
    evaluate.pMetricValues = values.data();
    if (!ok(cuptiProfilerHostEvaluateToGpuValues(&evaluate), "cuptiProfilerHostEvaluateToGpuValues")) break;
    KernelMetrics kernel;
    for (size_t m = 0; m < metrics_.size(); ++m) {
      if (metrics_[m] == kWantedMetrics[0]) kernel.bytes_read = values[m];
      if (metrics_[m] == kWantedMetrics[1]) kernel.bytes_written = values[m];
      if (metrics_[m] == kWantedMetrics[2]) kernel.duration_ns = values[m];
    }
    kernels.push_back(kernel);
  }
  disable();
  return kernels;
}

std::vector<const char*> DramProfiler::metric_names() const {
  std::vector<const char*> names;
  for (const std::string& metric : metrics_) names.push_back(metric.c_str());
  return names;
}

void DramProfiler::disable() {
  if (range_profiler_ == nullptr) return;
  auto disable = cupti_params<CUpti_RangeProfiler_Disable_Params>(CUpti_RangeProfiler_Disable_Params_STRUCT_SIZE);
  disable.pRangeProfilerObject = range_profiler_;
  ok(cuptiRangeProfilerDisable(&disable), "cuptiRangeProfilerDisable");
  range_profiler_ = nullptr;
}

nlohmann::json DramProfiler::describe() const {
  return {{"metrics", metrics_},
          {"skipped_metrics", skipped_},
          {"passes", passes_},
          {"chip_base_metrics", chip_base_metrics_},
          {"ranges", ranges_},
          {"ranges_dropped", ranges_dropped_}};
}

}  // namespace memfront::cupti_detail
