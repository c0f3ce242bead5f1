// The CUPTI probe (cupti_probe.h): Activity API records charged to memfront's
// phases and ops through external correlation ids, the memory replay of
// MEMORY2, the Range Profiler's DRAM bytes of one step (cupti_dram_profiler),
// and the GPU events of the trace.
#include "probes/cupti_probe.h"

#include <cuda_runtime.h>
#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/annotate.h"
#include "probes/cupti_dram_profiler.h"
#include "probes/trace_writer.h"

namespace memfront {

namespace {

// CUPTI fills buffers of this size; records must be 8-byte aligned.
constexpr size_t kActivityBufferBytes = size_t{8} << 20;
constexpr size_t kActivityBufferAlignment = 8;
// Correlations kept for attribution (two per CUDA call inside a range: the
// runtime's and the driver's); beyond this, records go to "(none)".
constexpr size_t kMaxCorrelations = size_t{1} << 23;
// GPU events kept for the trace; more are counted as dropped.
constexpr uint64_t kMaxTraceEvents = 1'000'000;
// Copies of the peak-bandwidth measurement, of kPeakCopyBytes (halved until
// they fit, down to kSmallestPeakCopyBytes); the best one counts.
constexpr int kPeakCopies = 5;
constexpr uint64_t kPeakCopyBytes = uint64_t{256} << 20;
constexpr uint64_t kSmallestPeakCopyBytes = uint64_t{16} << 20;

constexpr const char* kOutsideEveryRange = "(none)";

struct ActivityKind {
  CUpti_ActivityKind kind;
  const char* name;
};
// DRIVER and RUNTIME only so that CUPTI emits the external correlation records.
constexpr ActivityKind kActivityKinds[] = {
    {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "concurrent_kernel"},
    {CUPTI_ACTIVITY_KIND_MEMCPY, "memcpy"},
    {CUPTI_ACTIVITY_KIND_MEMSET, "memset"},
    {CUPTI_ACTIVITY_KIND_MEMORY2, "memory2"},
    {CUPTI_ACTIVITY_KIND_MEMORY_POOL, "memory_pool"},
    {CUPTI_ACTIVITY_KIND_OVERHEAD, "overhead"},
    {CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION, "external_correlation"},
    {CUPTI_ACTIVITY_KIND_DRIVER, "driver"},
    {CUPTI_ACTIVITY_KIND_RUNTIME, "runtime"},
};

const char* memcpy_kind_name(uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOA: return "HtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOH: return "AtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOA: return "AtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_ATOD: return "AtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOA: return "DtoA";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: return "HtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "PtoP";
    default: return "unknown";
  }
}

const char* overhead_kind_name(CUpti_ActivityOverheadKind kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_OVERHEAD_DRIVER_COMPILER: return "driver_compiler";
    case CUPTI_ACTIVITY_OVERHEAD_CUPTI_BUFFER_FLUSH: return "cupti_buffer_flush";
    case CUPTI_ACTIVITY_OVERHEAD_CUPTI_INSTRUMENTATION: return "cupti_instrumentation";
    case CUPTI_ACTIVITY_OVERHEAD_CUPTI_RESOURCE: return "cupti_resource";
    case CUPTI_ACTIVITY_OVERHEAD_RUNTIME_TRIGGERED_MODULE_LOADING: return "runtime_triggered_module_loading";
    case CUPTI_ACTIVITY_OVERHEAD_LAZY_FUNCTION_LOADING: return "lazy_function_loading";
    case CUPTI_ACTIVITY_OVERHEAD_COMMAND_BUFFER_FULL: return "command_buffer_full";
    case CUPTI_ACTIVITY_OVERHEAD_ACTIVITY_BUFFER_REQUEST: return "activity_buffer_request";
    case CUPTI_ACTIVITY_OVERHEAD_UVM_ACTIVITY_INIT: return "uvm_activity_init";
    default: return "unknown";
  }
}

std::string demangle(const std::string& name) {
  int status = 0;
  char* readable = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status != 0 || readable == nullptr) return name;
  std::string text = readable;
  std::free(readable);
  return text;
}

// A kernel, copy or memset as CUPTI reported it.
struct Activity {
  enum class Kind : uint8_t { kernel, memcpy, memset };
  Kind kind;
  uint8_t copy_kind;         // memcpy: CUpti_ActivityMemcpyKind
  uint32_t name;             // kernel: index into the kernel names
  uint32_t correlation;      // of the CUDA call that launched it
  uint32_t stream;
  uint64_t start, end;       // CUPTI ns
  uint64_t bytes;            // memcpy, memset
  uint64_t context = 0;      // set by flush(): index into the probe's contexts
};

// One MEMORY2 record.
struct MemoryEvent {
  uint64_t timestamp;
  uint64_t address;
  uint64_t bytes;
  bool allocation;
};

struct PhaseTotals {
  uint64_t kernels = 0, kernel_time_ns = 0;
  uint64_t memcpy = 0, memcpy_bytes = 0, memcpy_time_ns = 0;
  uint64_t memset = 0, memset_bytes = 0, memset_time_ns = 0;

  void add(const Activity& activity) {
    const uint64_t duration = activity.end - activity.start;
    switch (activity.kind) {
      case Activity::Kind::kernel:
        kernels += 1;
        kernel_time_ns += duration;
        break;
      case Activity::Kind::memcpy:
        memcpy += 1;
        memcpy_bytes += activity.bytes;
        memcpy_time_ns += duration;
        break;
      case Activity::Kind::memset:
        memset += 1;
        memset_bytes += activity.bytes;
        memset_time_ns += duration;
        break;
    }
  }
  nlohmann::json to_json() const {
    return {{"kernels", kernels}, {"kernel_time_ns", kernel_time_ns}, {"memcpy", memcpy},
            {"memcpy_bytes", memcpy_bytes}, {"memcpy_time_ns", memcpy_time_ns}, {"memset", memset},
            {"memset_bytes", memset_bytes}, {"memset_time_ns", memset_time_ns}};
  }
};

struct KernelTotals {
  uint64_t count = 0, time_ns = 0;
  uint64_t min_ns = std::numeric_limits<uint64_t>::max(), max_ns = 0;
  std::map<std::string, uint64_t> phases;
};

struct CopyTotals {
  uint64_t count = 0, bytes = 0, time_ns = 0;
  nlohmann::json to_json() const { return {{"count", count}, {"bytes", bytes}, {"time_ns", time_ns}}; }
};

struct OverheadTotals {
  uint64_t count = 0, time_ns = 0;
};

struct PoolTotals {
  uint32_t type = 0;
  uint64_t created = 0, destroyed = 0, trimmed = 0, max_size = 0, max_utilized = 0;
};

struct DramTotals {
  uint64_t kernels = 0;
  double bytes_read = 0, bytes_written = 0, duration_ns = 0;

  void add(const cupti_detail::KernelMetrics& metrics) {
    kernels += 1;
    bytes_read += metrics.bytes_read;
    bytes_written += metrics.bytes_written;
    duration_ns += metrics.duration_ns;
  }
  // NaN sums (a metric that was not collected) become null in JSON.
  nlohmann::json to_json(double peak_bytes_per_s) const {
    const double bytes_per_s = (bytes_read + bytes_written) / (duration_ns * 1e-9);
    auto number = [](double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); };
    return {{"kernels", kernels},
            {"bytes_read", number(bytes_read)},
            {"bytes_written", number(bytes_written)},
            {"duration_ns", number(duration_ns)},
            {"bytes_per_s", number(bytes_per_s)},
            {"fraction_of_peak", number(peak_bytes_per_s > 0 ? bytes_per_s / peak_bytes_per_s : NAN)}};
  }
};

// A kernel of the profiled step, from its activity record.
struct ProfiledKernel {
  uint64_t start;
  uint32_t name;
  uint64_t context;
};

}  // namespace

struct CuptiProbe::State {
  int64_t trace_start_ns;
  int64_t cupti_minus_annotate_ns = 0;  // CUPTI timestamp - annotate::now_ns(), at construction
  std::string device;
  std::vector<CUpti_ActivityKind> enabled;
  int range_handle = -1;

  // Annotate ranges and the contexts they name (main thread only).
  struct OpenRange {
    std::string_view name;
    bool is_phase;
  };
  struct Context {
    std::string phase;
    std::string op;  // empty outside every op
  };
  std::vector<OpenRange> open_ranges;
  std::vector<Context> contexts = {{kOutsideEveryRange, ""}};  // external id k names contexts[k]
  std::map<std::pair<std::string_view, std::string_view>, uint64_t> context_ids;

  // Everything below is guarded by `mutex`: the buffer callbacks fill it
  // from CUPTI's thread.
  mutable std::mutex mutex;
  std::vector<Activity> pending;  // waiting for flush() to charge them
  std::unordered_map<uint32_t, uint64_t> context_of_correlation;
  std::unordered_map<const char*, uint32_t> kernel_name_ids;  // CUPTI shares one name pointer per symbol
  std::vector<std::string> kernel_names;
  std::vector<MemoryEvent> memory_events;
  std::map<std::string, uint64_t> records;
  std::map<uint64_t, PoolTotals> pools;
  std::map<std::string, OverheadTotals> overhead;
  uint64_t dropped_records = 0;
  uint64_t correlations_dropped = 0;
  uint64_t other_memory_kinds = 0;
  std::vector<std::string> errors;

  // Charged by flush().
  std::map<std::string, PhaseTotals> phases, ops;
  std::map<std::string, KernelTotals> kernels;
  std::map<std::string, CopyTotals> memcpy_by_kind;
  CopyTotals memset_totals;
  std::vector<std::string> demangled;  // kernel_names, readable
  std::vector<Activity> trace_items;
  uint64_t dropped_trace_events = 0;

  // The profiled step.
  std::unique_ptr<cupti_detail::DramProfiler> dram;
  bool profiling = false, profiled = false;
  uint64_t profile_begin = 0, profile_end = 0;  // CUPTI ns
  std::vector<cupti_detail::KernelMetrics> profiled_metrics;
  std::vector<ProfiledKernel> profiled_kernels;
  double peak_bytes_per_s = 0;
  std::string peak_method;

  // The probe receiving CUPTI's buffers: one per process.
  static inline std::mutex receiver_mutex;
  static inline State* receiver = nullptr;

  void error(std::string text) {
    std::lock_guard lock(mutex);
    errors.push_back(std::move(text));
  }
  bool ok(CUptiResult result, const std::string& call) {
    if (result == CUPTI_SUCCESS) return true;
    error(call + ": " + cupti_detail::cupti_text(result));
    return false;
  }

  double trace_micros(uint64_t cupti_ns) const {
    return static_cast<double>(static_cast<int64_t>(cupti_ns) - cupti_minus_annotate_ns - trace_start_ns) / 1000.0;
  }

  static void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(kActivityBufferAlignment, kActivityBufferBytes));
    *size = *buffer != nullptr ? kActivityBufferBytes : 0;  // none: CUPTI drops records and counts them
    *max_records = 0;
  }

  static void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
    {
      std::lock_guard lock(receiver_mutex);
      if (receiver != nullptr) receiver->take(context, stream, buffer, valid);
    }
    std::free(buffer);
  }

  void take(CUcontext context, uint32_t stream, uint8_t* buffer, size_t valid) {
    std::lock_guard lock(mutex);
    CUpti_Activity* record = nullptr;
    while (true) {
      const CUptiResult next = cuptiActivityGetNextRecord(buffer, valid, &record);
      if (next == CUPTI_ERROR_MAX_LIMIT_REACHED) break;
      if (next != CUPTI_SUCCESS) {
        errors.push_back("cuptiActivityGetNextRecord: " + cupti_detail::cupti_text(next) +
                         "; the rest of a buffer was skipped");
        break;
      }
      take_record(*record);
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(context, stream, &dropped) == CUPTI_SUCCESS) dropped_records += dropped;
  }

  // Kernels, copies and memsets without timestamps (CUPTI had no room to
  // take them) are counted under "untimed" and left out of the totals.
  void take_timed(Activity activity, const char* kind) {
    records[kind] += 1;
    if (activity.start == 0 && activity.end == 0) {
      records["untimed"] += 1;
      return;
    }
    pending.push_back(activity);
  }

  void take_record(const CUpti_Activity& record) {
    switch (record.kind) {
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto& kernel = reinterpret_cast<const CUpti_ActivityKernel10&>(record);
        take_timed({Activity::Kind::kernel, 0, kernel_name_id(kernel.name), kernel.correlationId, kernel.streamId,
                    kernel.start, kernel.end, 0},
                   "kernel");
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto& copy = reinterpret_cast<const CUpti_ActivityMemcpy6&>(record);
        take_timed({Activity::Kind::memcpy, copy.copyKind, 0, copy.correlationId, copy.streamId, copy.start, copy.end,
                    copy.bytes},
                   "memcpy");
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto& memset = reinterpret_cast<const CUpti_ActivityMemset4&>(record);
        take_timed({Activity::Kind::memset, 0, 0, memset.correlationId, memset.streamId, memset.start, memset.end,
                    memset.bytes},
                   "memset");
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMORY2: {
        const auto& memory = reinterpret_cast<const CUpti_ActivityMemory4&>(record);
        records["memory2"] += 1;
        if (memory.memoryKind != CUPTI_ACTIVITY_MEMORY_KIND_DEVICE) {
          other_memory_kinds += 1;
          break;
        }
        memory_events.push_back({memory.timestamp, memory.address, memory.bytes,
                                 memory.memoryOperationType == CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION});
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMORY_POOL: {
        const auto& pool = reinterpret_cast<const CUpti_ActivityMemoryPool3&>(record);
        records["memory_pool"] += 1;
        PoolTotals& totals = pools[pool.address];
        totals.type = static_cast<uint32_t>(pool.memoryPoolType);
        totals.created += pool.memoryPoolOperationType == CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_CREATED;
        totals.destroyed += pool.memoryPoolOperationType == CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_DESTROYED;
        totals.trimmed += pool.memoryPoolOperationType == CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_TRIMMED;
        totals.max_size = std::max<uint64_t>(totals.max_size, pool.size);
        totals.max_utilized = std::max<uint64_t>(totals.max_utilized, pool.utilizedSize);
        break;
      }
      case CUPTI_ACTIVITY_KIND_OVERHEAD: {
        const auto& overhead_record = reinterpret_cast<const CUpti_ActivityOverhead3&>(record);
        records["overhead"] += 1;
        OverheadTotals& totals = overhead[overhead_kind_name(overhead_record.overheadKind)];
        totals.count += 1;
        totals.time_ns += overhead_record.end - overhead_record.start;
        break;
      }
      case CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION: {
        const auto& correlation = reinterpret_cast<const CUpti_ActivityExternalCorrelation&>(record);
        records["external_correlation"] += 1;
        if (correlation.externalKind != CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0) break;
        if (context_of_correlation.size() < kMaxCorrelations) {
          context_of_correlation[correlation.correlationId] = correlation.externalId;
        } else {
          correlations_dropped += 1;
        }
        break;
      }
      case CUPTI_ACTIVITY_KIND_DRIVER:
      case CUPTI_ACTIVITY_KIND_RUNTIME: records["api"] += 1; break;
      default: records["other"] += 1; break;
    }
  }

  uint32_t kernel_name_id(const char* name) {
    const auto [entry, inserted] = kernel_name_ids.try_emplace(name, static_cast<uint32_t>(kernel_names.size()));
    if (inserted) kernel_names.emplace_back(name != nullptr ? name : "?");
    return entry->second;
  }

  // --- annotate ranges -------------------------------------------------------

  uint64_t context_id(std::string_view phase, std::string_view op) {
    const auto [entry, inserted] = context_ids.try_emplace({phase, op}, contexts.size());
    if (inserted) contexts.push_back({std::string(phase), std::string(op)});
    return entry->second;
  }

  void on_range(const annotate::RangeEvent& event) {
    if (event.begin) {
      open_ranges.push_back({event.name, event.is_phase});
      std::string_view phase = kOutsideEveryRange, op;
      for (const OpenRange& range : open_ranges) {
        if (range.is_phase) {
          phase = range.name;
        } else {
          op = range.name;
        }
      }
      ok(cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, context_id(phase, op)),
         "cuptiActivityPushExternalCorrelationId");
      return;
    }
    // A range that began before the probe has no id to pop.
    if (open_ranges.empty() || open_ranges.back().name != event.name) return;
    open_ranges.pop_back();
    uint64_t last = 0;
    ok(cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last),
       "cuptiActivityPopExternalCorrelationId");
  }

  // --- flush -----------------------------------------------------------------

  void charge(Activity& activity) {
    const auto found = context_of_correlation.find(activity.correlation);
    activity.context = found != context_of_correlation.end() && found->second < contexts.size() ? found->second : 0;
    const Context& context = contexts[activity.context];
    phases[context.phase].add(activity);
    if (!context.op.empty()) ops[context.op].add(activity);
    const uint64_t duration = activity.end - activity.start;
    switch (activity.kind) {
      case Activity::Kind::kernel: {
        while (demangled.size() < kernel_names.size()) demangled.push_back(demangle(kernel_names[demangled.size()]));
        KernelTotals& totals = kernels[demangled[activity.name]];
        totals.count += 1;
        totals.time_ns += duration;
        totals.min_ns = std::min(totals.min_ns, duration);
        totals.max_ns = std::max(totals.max_ns, duration);
        totals.phases[context.phase] += 1;
        const bool in_profiled_step =
            (profiling || profiled) && activity.start >= profile_begin && (profiling || activity.start <= profile_end);
        if (in_profiled_step) {
          profiled_kernels.push_back({activity.start, activity.name, activity.context});
        }
        break;
      }
      case Activity::Kind::memcpy: {
        CopyTotals& totals = memcpy_by_kind[memcpy_kind_name(activity.copy_kind)];
        totals.count += 1;
        totals.bytes += activity.bytes;
        totals.time_ns += duration;
        break;
      }
      case Activity::Kind::memset:
        memset_totals.count += 1;
        memset_totals.bytes += activity.bytes;
        memset_totals.time_ns += duration;
        break;
    }
    if (trace_items.size() < kMaxTraceEvents) {
      trace_items.push_back(activity);
    } else {
      dropped_trace_events += 1;
    }
  }

  // --- summary ---------------------------------------------------------------

  // Live device bytes after every MEMORY2 record, in time order (releases
  // first at equal times, so that a peak is never overstated).
  struct MemoryReplay {
    std::vector<std::pair<uint64_t, uint64_t>> live_at;  // (CUPTI ns, live bytes)
    uint64_t live = 0, peak = 0, allocations = 0, releases = 0, unmatched_releases = 0;
  };
  MemoryReplay replay_memory() const {
    std::vector<MemoryEvent> events = memory_events;
    std::stable_sort(events.begin(), events.end(), [](const MemoryEvent& a, const MemoryEvent& b) {
      return a.timestamp != b.timestamp ? a.timestamp < b.timestamp : !a.allocation && b.allocation;
    });
    MemoryReplay replay;
    std::unordered_map<uint64_t, uint64_t> live_allocations;  // address -> bytes
    for (const MemoryEvent& event : events) {
      if (event.allocation) {
        live_allocations[event.address] = event.bytes;
        replay.live += event.bytes;
        replay.allocations += 1;
      } else {
        const auto found = live_allocations.find(event.address);
        if (found == live_allocations.end()) {
          replay.unmatched_releases += 1;
          continue;
        }
        replay.live -= found->second;
        live_allocations.erase(found);
        replay.releases += 1;
      }
      replay.peak = std::max(replay.peak, replay.live);
      replay.live_at.emplace_back(event.timestamp, replay.live);
    }
    return replay;
  }

  nlohmann::json dram_summary() const {
    nlohmann::json dram = this->dram ? this->dram->describe() : nlohmann::json::object();
    dram["profiled"] = profiled;
    dram["peak_bytes_per_s"] = peak_bytes_per_s;
    dram["peak_method"] = peak_method;
    if (!profiled || profiled_metrics.empty()) return dram;

    std::vector<ProfiledKernel> in_order = profiled_kernels;
    std::sort(in_order.begin(), in_order.end(),
              [](const ProfiledKernel& a, const ProfiledKernel& b) { return a.start < b.start; });
    if (in_order.size() != profiled_metrics.size()) {
      dram["unattributed"] = "the profiled step had " + std::to_string(profiled_metrics.size()) +
                             " kernel ranges but " + std::to_string(in_order.size()) +
                             " kernel records: values are not charged to kernels";
      DramTotals all;
      for (const cupti_detail::KernelMetrics& metrics : profiled_metrics) all.add(metrics);
      dram["total"] = all.to_json(peak_bytes_per_s);
      return dram;
    }
    std::map<std::string, DramTotals> by_phase, by_op, by_kernel;
    DramTotals all;
    for (size_t k = 0; k < in_order.size(); ++k) {
      const Context& context = contexts[in_order[k].context];
      const cupti_detail::KernelMetrics& metrics = profiled_metrics[k];
      all.add(metrics);
      by_phase[context.phase].add(metrics);
      if (!context.op.empty()) by_op[context.op].add(metrics);
      by_kernel[demangled[in_order[k].name]].add(metrics);
    }
    auto to_json = [&](const std::map<std::string, DramTotals>& totals) {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [name, total] : totals) out[name] = total.to_json(peak_bytes_per_s);
      return out;
    };
    dram["total"] = all.to_json(peak_bytes_per_s);
    dram["by_phase"] = to_json(by_phase);
    dram["by_op"] = to_json(by_op);
    dram["by_kernel"] = to_json(by_kernel);
    return dram;
  }
};

namespace {

// Device-to-device copy bandwidth, the best of kPeakCopies copies of `bytes`
// (halved until the two buffers fit), counting the bytes read and written.
double measure_copy_bandwidth(uint64_t bytes, std::string& method, std::string& error) {
  void* source = nullptr;
  void* destination = nullptr;
  while (bytes >= kSmallestPeakCopyBytes) {
    if (cudaMalloc(&source, bytes) == cudaSuccess && cudaMalloc(&destination, bytes) == cudaSuccess) break;
    cudaFree(source);
    source = nullptr;
    cudaGetLastError();  // the failed allocation is not an error of the work that follows
    bytes /= 2;
  }
  if (destination == nullptr) {
    error = "peak bandwidth: no room for two " + std::to_string(kSmallestPeakCopyBytes >> 20) + " MiB buffers";
    return 0;
  }
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  float best_ms = std::numeric_limits<float>::max();
  bool measured = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess &&
                  cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess &&
                  cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, stream) == cudaSuccess;
  for (int copy = 0; measured && copy < kPeakCopies; ++copy) {
    float ms = 0;
    measured = cudaEventRecord(start, stream) == cudaSuccess &&
               cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice, stream) == cudaSuccess &&
               cudaEventRecord(stop, stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess &&
               cudaEventElapsedTime(&ms, start, stop) == cudaSuccess;
    best_ms = std::min(best_ms, ms);
  }
  if (stop != nullptr) cudaEventDestroy(stop);
  if (start != nullptr) cudaEventDestroy(start);
  if (stream != nullptr) cudaStreamDestroy(stream);
  cudaFree(destination);
  cudaFree(source);
  if (!measured || best_ms <= 0) {
    error = std::string("peak bandwidth: the timed copies failed: ") + cudaGetErrorString(cudaGetLastError());
    return 0;
  }
  method = "best of " + std::to_string(kPeakCopies) + " device-to-device cudaMemcpyAsync of " +
           std::to_string(bytes >> 20) + " MiB, counting 2 x " + std::to_string(bytes >> 20) +
           " MiB (read + written) per copy";
  return 2.0 * static_cast<double>(bytes) / (static_cast<double>(best_ms) * 1e-3);
}

}  // namespace

CuptiProbe::CuptiProbe(int64_t trace_start_ns) : CuptiProbe(trace_start_ns, Options{}) {}

CuptiProbe::CuptiProbe(int64_t trace_start_ns, Options options) : state_(std::make_unique<State>()) {
  State& state = *state_;
  state.trace_start_ns = trace_start_ns;

  int devices = 0;
  const cudaError_t counted = cudaGetDeviceCount(&devices);
  if (counted != cudaSuccess || devices == 0) {
    state.errors.push_back(std::string("no CUDA device: ") +
                           (counted != cudaSuccess ? cudaGetErrorString(counted) : "cudaGetDeviceCount found 0"));
    return;
  }
  {
    std::lock_guard lock(State::receiver_mutex);
    if (State::receiver != nullptr) {
      throw std::logic_error("CuptiProbe: another probe is active in this process (CUPTI's buffers are process-wide)");
    }
  }
  int device = 0;
  cudaDeviceProp properties{};
  if (cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&properties, device) == cudaSuccess) {
    state.device = properties.name;
  }
  cudaFree(nullptr);  // makes sure the device's context exists

  // Before any activity is recorded: its allocations are the probe's, not the trial's.
  std::string peak_error;
  state.peak_bytes_per_s = measure_copy_bandwidth(kPeakCopyBytes, state.peak_method, peak_error);
  if (!peak_error.empty()) state.errors.push_back(peak_error);
  if (options.profile_dram) state.dram = std::make_unique<cupti_detail::DramProfiler>();

  const int64_t before = annotate::now_ns();
  uint64_t cupti_now = 0;
  const CUptiResult timestamp = cuptiGetTimestamp(&cupti_now);
  const int64_t after = annotate::now_ns();
  if (!state.ok(timestamp, "cuptiGetTimestamp")) return;
  state.cupti_minus_annotate_ns = static_cast<int64_t>(cupti_now) - (before + (after - before) / 2);

  {
    std::lock_guard lock(State::receiver_mutex);
    State::receiver = &state;
  }
  if (!state.ok(cuptiActivityRegisterCallbacks(State::buffer_requested, State::buffer_completed),
                "cuptiActivityRegisterCallbacks")) {
    return;
  }
  for (const ActivityKind& kind : kActivityKinds) {
    if (state.ok(cuptiActivityEnable(kind.kind), std::string("cuptiActivityEnable(") + kind.name + ")")) {
      state.enabled.push_back(kind.kind);
    }
  }
  state.range_handle = annotate::subscribe([&state](const annotate::RangeEvent& event) { state.on_range(event); });
}

CuptiProbe::~CuptiProbe() {
  State& state = *state_;
  if (state.range_handle >= 0) annotate::unsubscribe(state.range_handle);
  // Ranges still open keep ids on CUPTI's per-thread stack.
  for (size_t open = 0; open < state.open_ranges.size(); ++open) {
    uint64_t last = 0;
    cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &last);
  }
  if (state.profiling) state.dram->end();
  if (!state.enabled.empty()) cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  for (CUpti_ActivityKind kind : state.enabled) cuptiActivityDisable(kind);
  std::lock_guard lock(State::receiver_mutex);
  if (State::receiver == &state) State::receiver = nullptr;
}

void CuptiProbe::begin_profiled_step() {
  State& state = *state_;
  if (!state.dram || state.profiling || state.profiled || !state.dram->usable()) return;
  if (!state.dram->begin()) return;
  uint64_t now = 0;
  state.ok(cuptiGetTimestamp(&now), "cuptiGetTimestamp");
  state.profile_begin = now;
  state.profiling = true;
}

void CuptiProbe::end_profiled_step() {
  State& state = *state_;
  if (!state.profiling) return;
  if (cudaDeviceSynchronize() != cudaSuccess) state.error("cudaDeviceSynchronize failed after the profiled step");
  uint64_t now = 0;
  state.ok(cuptiGetTimestamp(&now), "cuptiGetTimestamp");
  state.profile_end = now;
  std::vector<cupti_detail::KernelMetrics> metrics = state.dram->end();
  std::lock_guard lock(state.mutex);
  state.profiled_metrics = std::move(metrics);
  state.profiling = false;
  state.profiled = true;
}

void CuptiProbe::flush() {
  State& state = *state_;
  if (state.enabled.empty()) return;
  // Not under the lock: CUPTI delivers the buffers through the callback, which takes it.
  state.ok(cuptiActivityFlushAll(0), "cuptiActivityFlushAll");
  std::lock_guard lock(state.mutex);
  for (Activity& activity : state.pending) state.charge(activity);
  state.pending.clear();
}

nlohmann::json CuptiProbe::summary() const {
  const State& state = *state_;
  std::lock_guard lock(state.mutex);
  nlohmann::json out;
  out["device"] = state.device;
  out["chip"] = state.dram ? state.dram->chip() : "";
  out["records"] = state.records;
  out["dropped_records"] = state.dropped_records;
  out["dropped_trace_events"] = state.dropped_trace_events;

  auto totals_json = [](const std::map<std::string, PhaseTotals>& totals) {
    nlohmann::json json = nlohmann::json::object();
    for (const auto& [name, total] : totals) json[name] = total.to_json();
    return json;
  };
  out["phases"] = totals_json(state.phases);
  out["ops"] = totals_json(state.ops);
  nlohmann::json kernels = nlohmann::json::object();
  for (const auto& [name, totals] : state.kernels) {
    kernels[name] = {{"count", totals.count}, {"time_ns", totals.time_ns}, {"min_ns", totals.min_ns},
                     {"max_ns", totals.max_ns}, {"phases", totals.phases}};
  }
  out["kernels"] = std::move(kernels);
  nlohmann::json memcpy = nlohmann::json::object();
  for (const auto& [kind, totals] : state.memcpy_by_kind) memcpy[kind] = totals.to_json();
  out["memcpy"] = std::move(memcpy);
  out["memset"] = state.memset_totals.to_json();

  const State::MemoryReplay memory = state.replay_memory();
  out["memory2_peak_bytes"] = memory.peak;
  out["memory2"] = {{"live_bytes", memory.live},
                    {"allocations", memory.allocations},
                    {"releases", memory.releases},
                    {"unmatched_releases", memory.unmatched_releases},
                    {"other_memory_kinds", state.other_memory_kinds}};
  nlohmann::json pools = nlohmann::json::array();
  for (const auto& [address, pool] : state.pools) {
    const char* type = pool.type == CUPTI_ACTIVITY_MEMORY_POOL_TYPE_LOCAL ? "local" : "imported";
    pools.push_back({{"address", address}, {"type", type},
                     {"created", pool.created}, {"destroyed", pool.destroyed}, {"trimmed", pool.trimmed},
                     {"max_size_bytes", pool.max_size}, {"max_utilized_bytes", pool.max_utilized}});
  }
  out["memory_pools"] = std::move(pools);
  nlohmann::json overhead = nlohmann::json::object();
  for (const auto& [kind, totals] : state.overhead) {
    overhead[kind] = {{"count", totals.count}, {"time_ns", totals.time_ns}};
  }
  out["overhead"] = std::move(overhead);
  out["dram"] = state.dram_summary();

  std::vector<std::string> errors = state.errors;
  if (state.dram) errors.insert(errors.end(), state.dram->errors().begin(), state.dram->errors().end());
  if (state.correlations_dropped > 0) {
    errors.push_back(std::to_string(state.correlations_dropped) +
                     " external correlations beyond the probe's limit: their records are charged to (none)");
  }
  out["errors"] = std::move(errors);
  return out;
}

std::string CuptiProbe::serialize_gpu_events() const {
  const State& state = *state_;
  std::lock_guard lock(state.mutex);
  std::vector<Activity> items = state.trace_items;
  std::stable_sort(items.begin(), items.end(), [](const Activity& a, const Activity& b) { return a.start < b.start; });
  nlohmann::json events = nlohmann::json::array();
  for (const Activity& item : items) {
    const State::Context& context = state.contexts[item.context];
    nlohmann::json args = {{"phase", context.phase}, {"stream", item.stream}};
    if (!context.op.empty()) args["op"] = context.op;
    std::string name;
    switch (item.kind) {
      case Activity::Kind::kernel: name = state.demangled[item.name]; break;
      case Activity::Kind::memcpy: name = std::string("memcpy ") + memcpy_kind_name(item.copy_kind); break;
      case Activity::Kind::memset: name = "memset"; break;
    }
    if (item.kind != Activity::Kind::kernel) args["bytes"] = item.bytes;
    events.push_back({{"name", std::move(name)},
                      {"cat", "gpu"},
                      {"ph", "X"},
                      {"ts", state.trace_micros(item.start)},
                      {"dur", static_cast<double>(item.end - item.start) / 1000.0},
                      {"tid", item.kind == Activity::Kind::kernel ? kTraceGpuKernelTid : kTraceGpuCopyTid},
                      {"args", std::move(args)}});
  }
  // The live device bytes as CUPTI saw them, within what is left of the cap.
  const State::MemoryReplay memory = state.replay_memory();
  const uint64_t room = kMaxTraceEvents - std::min<uint64_t>(kMaxTraceEvents, items.size());
  for (size_t i = 0; i < memory.live_at.size() && i < room; ++i) {
    events.push_back({{"name", "gpu memory (CUPTI)"},
                      {"ph", "C"},
                      {"ts", state.trace_micros(memory.live_at[i].first)},
                      {"tid", kTraceGpuKernelTid},
                      {"args", {{"live_bytes", memory.live_at[i].second}}}});
  }
  return events.dump();
}

}  // namespace memfront
