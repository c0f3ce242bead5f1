#pragma once
// CUPTI probe: what one process's GPU did, as CUPTI saw it. Built only with
// CUDA (MEMFRONT_HAVE_CUPTI). Like every probe it knows nothing of the
// kernels: it learns of memfront's phases and ops through core/annotate.h.
//
// Activity API. Records of kernels (CONCURRENT_KERNEL, which does not
// serialize them), memcpy, memset, device allocations and releases (MEMORY2),
// memory pools and CUPTI's own overhead. Every annotate range pushes a CUPTI
// external correlation id (kind CUSTOM0) naming the innermost open phase and
// op, and pops it when it ends, so each kernel and copy is charged to the
// phase and op that launched it ("(none)" outside every range). CUPTI emits
// those correlations only beside driver and runtime API records, so both
// kinds are enabled too; their records are counted and otherwise dropped.
//
// Range Profiler (CUDA 13 has no Event/Metric API). On one sampled step,
// begin_profiled_step() .. end_profiled_step(), every kernel is one range
// (auto ranges, kernel replay): dram__bytes_read.sum, dram__bytes_write.sum
// and gpu__time_duration.sum per kernel, charged to the kernel's phase and op
// by launch order. Auto ranges rather than ranges from the annotate phases:
// phases nest (comm inside backward), and CUPTI profiles one nesting level
// per pass, while a training step cannot be replayed for more passes.
// For the same reason the metrics must fit in one pass, so that no kernel is
// ever re-executed (NCCL's could not be): metrics that do not are left out
// and named in the summary, as are metrics the chip does not support (the
// chip's metrics are enumerated first). Copies and memsets are not kernels:
// their bytes come from the Activity API only. The profiled step's kernels run
// one at a time, so a trial should keep that step out of its timings.
//
// Peak bandwidth, for "fraction of peak": measured once at construction, the
// best of five 256 MiB device-to-device cudaMemcpyAsync, counting the bytes
// read and written (2 x 256 MiB per copy), as dram__bytes_read + write do.
// (CUDA 13 dropped the cudaDeviceProp memory clock fields a formula would
// need.) It briefly allocates 512 MiB outside the arena, before any record
// is taken.
//
// Failure never stops a trial: a CUPTI call that fails (no device, profiling
// not permitted: CUPTI_ERROR_INSUFFICIENT_PRIVILEGES, ...) is reported in
// summary()["errors"] and the probe carries on with what it has.
//
// One probe per process at a time (CUPTI's buffer callbacks are global).
// Use, in a trial rank:
//   1. after the compute backend has made the device current (its context
//      exists) and before the arena allocates: CuptiProbe probe(trace.start_ns())
//      (or annotate::now_ns() without a trace);
//   2. on the sampled step: probe.begin_profiled_step() before its first
//      launch, probe.end_profiled_step() after its last;
//   3. after the work has completed (Ops::synchronize()), probe.flush(): at
//      least at the end, and every few steps in long trials, to bound memory;
//   4. probe.summary() into the rank's record, and
//      trace.serialize_events(probe.serialize_gpu_events()) for the trace.
//
// summary() fields (times in ns, sizes in bytes):
//   device, chip                     the GPU, and CUPTI's chip name ("GH100")
//   records      {kernel, memcpy, memset, memory2, memory_pool, overhead,
//                 external_correlation, api, other, untimed}  records received
//                 by kind (untimed: kernels and copies without timestamps,
//                 left out of the totals)
//   dropped_records                   records CUPTI dropped for want of buffer
//                                     space (cuptiActivityGetNumDroppedRecords)
//   dropped_trace_events              kernels and copies beyond the 1,000,000
//                                     kept for the trace (the memory counters
//                                     get what room is left)
//   phases, ops  {name: {kernels, kernel_time_ns, memcpy, memcpy_bytes,
//                        memcpy_time_ns, memset, memset_bytes, memset_time_ns}}
//                                     by innermost phase / innermost op
//   kernels      {name: {count, time_ns, min_ns, max_ns, phases: {phase: count}}}
//                                     by demangled kernel name
//   memcpy       {HtoD|DtoH|DtoD|...: {count, bytes, time_ns}}
//   memset       {count, bytes, time_ns}
//   memory2_peak_bytes                peak of live device bytes, replaying
//                                     MEMORY2 allocations and releases in time
//                                     order (the cross-check of the arena peak)
//   memory2      {live_bytes, allocations, releases, unmatched_releases,
//                 other_memory_kinds}  (unmatched: memory allocated before the probe)
//   memory_pools [{address, type, created, destroyed, trimmed, max_size_bytes,
//                  max_utilized_bytes}]
//   overhead     {kind: {count, time_ns}}
//   dram         {metrics, skipped_metrics: [{metric, reason}], passes,
//                 chip_base_metrics, peak_bytes_per_s, peak_method,
//                 profiled: bool, ranges, ranges_dropped, total,
//                 by_phase, by_op, by_kernel: {name: totals}}, where totals =
//                 {kernels, bytes_read, bytes_written, duration_ns,
//                 bytes_per_s, fraction_of_peak} (null: metric not collected);
//                 "unattributed" (and only total) when the ranges do not
//                 match the step's kernel records one to one
//   errors       [text]               every failure, with the CUPTI/CUDA call
//
// Trace events (serialize_gpu_events): a JSON array of complete events on
// tid kTraceGpuKernelTid ("gpu kernels") and kTraceGpuCopyTid ("gpu copies"),
// args {phase, op, stream, bytes}, and "gpu memory (CUPTI)" counter events
// of live device bytes; timestamps in microseconds since trace_start_ns. CUPTI
// timestamps (ns, cuptiGetTimestamp's clock) are moved to annotate::now_ns()'s
// clock by their offset, read once at construction.
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace memfront {

class CuptiProbe {
 public:
  struct Options {
    bool profile_dram = true;  // the Range Profiler on begin/end_profiled_step
  };

  // trace_start_ns: time zero of the trace the GPU events go into
  // (TraceRecorder::start_ns()), on annotate::now_ns()'s clock.
  explicit CuptiProbe(int64_t trace_start_ns);
  CuptiProbe(int64_t trace_start_ns, Options options);
  ~CuptiProbe();
  CuptiProbe(const CuptiProbe&) = delete;
  CuptiProbe& operator=(const CuptiProbe&) = delete;

  // The sampled step: call begin before its first launch and end after its
  // last, once per probe (later calls do nothing). Both wait for the device
  // to be idle, so that exactly the step's kernels are profiled.
  void begin_profiled_step();
  void end_profiled_step();

  // Takes in the records CUPTI has completed and charges them to phases, ops
  // and kernels. Call after the work to count has completed.
  void flush();

  // What flush() has taken in so far (fields above).
  nlohmann::json summary() const;
  // The GPU events for TraceRecorder::serialize_events(gpu_events).
  std::string serialize_gpu_events() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace memfront
