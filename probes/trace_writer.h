#pragma once
// Trace writer: records a trial's annotation ranges and an arena's memory
// changes in memory, and writes them as Chrome trace-event JSON (the "JSON
// Object Format"), which ui.perfetto.dev and chrome://tracing open.
//
// - Ranges become complete ("X") events: phases on tid 0, ops (collectives
//   such as "all_reduce_sum", "quantize", "topk") on tid 1. A range is kept
//   whole or dropped whole, so nesting stays valid even when the cap is hit.
// - Every arena change becomes a counter ("C") event named "memory" with the
//   live bytes of every category and "total" after the change: the counters
//   replay the arena, so their maxima are the arena's peaks.
// - Timestamps are microseconds since the recorder started (the trial start).
// - GPU events (CuptiProbe::serialize_gpu_events()) join a rank's events
//   through serialize_events(gpu_events): kernels on tid 2, copies and
//   memsets on tid 3, already on the recorder's time base (start_ns()).
//
// Several ranks: each rank's recorder serializes its events, the caller
// moves the strings to one rank (the writer knows nothing of communicators),
// and write_trace puts rank r's events in process r ("rank r").
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arena.h"

namespace memfront {

// Where a rank's GPU events go in its trace process.
inline constexpr int kTraceGpuKernelTid = 2;  // "gpu kernels"
inline constexpr int kTraceGpuCopyTid = 3;    // "gpu copies" (memcpy and memset)

class TraceRecorder {
 public:
  // Bounded: past max_events further events are counted as dropped, not kept.
  static constexpr uint64_t kDefaultMaxEvents = 2'000'000;

  // Subscribes to annotation ranges and to `arena`, which must outlive the
  // recorder or stop() must be called before it goes.
  explicit TraceRecorder(Arena& arena, uint64_t max_events = kDefaultMaxEvents);
  ~TraceRecorder();
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  // Unsubscribes now: what happens later (gathering the results) is not part
  // of the trial's trace. Idempotent.
  void stop();

  uint64_t event_count() const { return spans_.size() + samples_.size(); }
  uint64_t dropped() const { return dropped_; }

  // annotate::now_ns() when the recorder started: the trace's time zero.
  int64_t start_ns() const { return start_ns_; }

  // This rank's events, without pid, as JSON text for write_trace.
  std::string serialize_events() const;
  // The same with `gpu_events` added: a JSON array of trace events whose
  // timestamps are already microseconds since start_ns(), on the GPU tids
  // (CuptiProbe::serialize_gpu_events()). Throws std::invalid_argument when
  // gpu_events is not a JSON array (nlohmann::json::parse_error when not JSON).
  std::string serialize_events(std::string_view gpu_events) const;

  // One trace file from every rank's serialize_events(), in rank order.
  // `metadata` goes under the file's "metadata" key (beside the dropped
  // counts). Throws std::runtime_error when the file cannot be written.
  static void write_trace(const std::filesystem::path& path, const std::vector<std::string>& per_rank_events,
                          const nlohmann::json& metadata = nlohmann::json::object());

 private:
  struct OpenRange {
    std::string_view name;
    bool is_phase;
    int64_t begin_ns;
  };
  struct Span {
    std::string_view name;  // annotate names are literals: safe to keep by view
    bool is_phase;
    int64_t begin_ns;
    int64_t end_ns;
  };
  struct MemSample {
    int64_t time_ns;
    MemCategory category;
    uint64_t live_category;
    uint64_t live_total;
  };

  bool has_room() const { return event_count() < max_events_; }
  nlohmann::json host_events() const;

  Arena* arena_;
  uint64_t max_events_;
  int64_t start_ns_;
  BytesByCategory start_live_;  // the arena before the first recorded change
  uint64_t start_total_;
  int range_handle_ = -1;
  int arena_handle_ = -1;
  std::vector<OpenRange> open_;  // innermost last; ranges close in LIFO order
  std::vector<Span> spans_;
  std::vector<MemSample> samples_;
  uint64_t dropped_ = 0;
};

}  // namespace memfront
