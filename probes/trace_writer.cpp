#include "probes/trace_writer.h"

#include <algorithm>
#include <stdexcept>

#include "core/annotate.h"
#include "core/jsonl.h"

namespace memfront {

namespace {

constexpr int kPhaseTid = 0;
constexpr int kOpTid = 1;

double micros(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

nlohmann::json memory_counter(double ts, const BytesByCategory& live, uint64_t total) {
  nlohmann::json args = nlohmann::json::object();
  for (MemCategory category : kAllMemCategories) {
    args[std::string(to_string(category))] = live[static_cast<int>(category)];
  }
  args["total"] = total;
  return {{"name", "memory"}, {"ph", "C"}, {"ts", ts}, {"tid", kPhaseTid}, {"args", std::move(args)}};
}

nlohmann::json metadata_event(const char* name, int pid, int tid, const nlohmann::json& args) {
  return {{"name", name}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", args}};
}

}  // namespace

TraceRecorder::TraceRecorder(Arena& arena, uint64_t max_events)
    : arena_(&arena),
      max_events_(max_events),
      start_ns_(annotate::now_ns()),
      start_live_(arena.live_by_category()),
      start_total_(arena.live_total()) {
  range_handle_ = annotate::subscribe([this](const annotate::RangeEvent& event) {
    if (event.begin) {
      open_.push_back({event.name, event.is_phase, event.time_ns});
      return;
    }
    // A range that began before the recorder did has no begin to pair with.
    if (open_.empty() || open_.back().name != event.name) return;
    const OpenRange range = open_.back();
    open_.pop_back();
    if (has_room()) {
      spans_.push_back({range.name, range.is_phase, range.begin_ns, event.time_ns});
    } else {
      ++dropped_;
    }
  });
  arena_handle_ = arena.subscribe([this](const MemEvent& event) {
    if (has_room()) {
      samples_.push_back({event.time_ns, event.category, event.live_category, event.live_total});
    } else {
      ++dropped_;
    }
  });
}

TraceRecorder::~TraceRecorder() { stop(); }

void TraceRecorder::stop() {
  if (range_handle_ >= 0) annotate::unsubscribe(range_handle_);
  if (arena_handle_ >= 0) arena_->unsubscribe(arena_handle_);
  range_handle_ = arena_handle_ = -1;
}

std::string TraceRecorder::serialize_events() const {
  return nlohmann::json{{"events", host_events()}, {"dropped", dropped_}}.dump();
}

std::string TraceRecorder::serialize_events(std::string_view gpu_events) const {
  nlohmann::json events = host_events();
  nlohmann::json gpu = nlohmann::json::parse(gpu_events);
  if (!gpu.is_array()) {
    throw std::invalid_argument("TraceRecorder::serialize_events: the GPU events are not a JSON array");
  }
  for (nlohmann::json& event : gpu) events.push_back(std::move(event));
  return nlohmann::json{{"events", std::move(events)}, {"dropped", dropped_}}.dump();
}

nlohmann::json TraceRecorder::host_events() const {
  // Events go out in time order; a range that starts with its parent comes
  // after it (longer first), which is how trace viewers read nesting.
  struct Item {
    int64_t time_ns;
    int64_t end_ns;
    bool is_span;
    size_t index;
  };
  std::vector<Item> items;
  items.reserve(spans_.size() + samples_.size());
  for (size_t i = 0; i < spans_.size(); ++i) items.push_back({spans_[i].begin_ns, spans_[i].end_ns, true, i});
  for (size_t i = 0; i < samples_.size(); ++i) items.push_back({samples_[i].time_ns, samples_[i].time_ns, false, i});
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.time_ns != b.time_ns ? a.time_ns < b.time_ns : a.end_ns > b.end_ns;
  });

  nlohmann::json events = nlohmann::json::array();
  events.push_back(memory_counter(0.0, start_live_, start_total_));
  BytesByCategory live = start_live_;
  for (const Item& item : items) {
    if (item.is_span) {
      const Span& span = spans_[item.index];
      events.push_back({{"name", std::string(span.name)},
                        {"cat", span.is_phase ? "phase" : "op"},
                        {"ph", "X"},
                        {"ts", micros(span.begin_ns - start_ns_)},
                        {"dur", micros(span.end_ns - span.begin_ns)},
                        {"tid", span.is_phase ? kPhaseTid : kOpTid}});
    } else {
      const MemSample& sample = samples_[item.index];
      live[static_cast<int>(sample.category)] = sample.live_category;
      events.push_back(memory_counter(micros(sample.time_ns - start_ns_), live, sample.live_total));
    }
  }
  return events;
}

void TraceRecorder::write_trace(const std::filesystem::path& path, const std::vector<std::string>& per_rank_events,
                                const nlohmann::json& metadata) {
  nlohmann::json trace_events = nlohmann::json::array();
  nlohmann::json dropped = nlohmann::json::array();
  for (size_t rank = 0; rank < per_rank_events.size(); ++rank) {
    const int pid = static_cast<int>(rank);
    nlohmann::json part = nlohmann::json::parse(per_rank_events[rank]);
    trace_events.push_back(metadata_event("process_name", pid, 0, {{"name", "rank " + std::to_string(rank)}}));
    trace_events.push_back(metadata_event("process_sort_index", pid, 0, {{"sort_index", pid}}));
    trace_events.push_back(metadata_event("thread_name", pid, kPhaseTid, {{"name", "phases"}}));
    trace_events.push_back(metadata_event("thread_name", pid, kOpTid, {{"name", "ops"}}));
    const auto on_tid = [&](int tid) {
      return std::any_of(part.at("events").begin(), part.at("events").end(),
                         [tid](const nlohmann::json& event) { return event.value("tid", -1) == tid; });
    };
    if (on_tid(kTraceGpuKernelTid)) {
      trace_events.push_back(metadata_event("thread_name", pid, kTraceGpuKernelTid, {{"name", "gpu kernels"}}));
    }
    if (on_tid(kTraceGpuCopyTid)) {
      trace_events.push_back(metadata_event("thread_name", pid, kTraceGpuCopyTid, {{"name", "gpu copies"}}));
    }
    for (nlohmann::json& event : part.at("events")) {
      event["pid"] = pid;
      trace_events.push_back(std::move(event));
    }
    dropped.push_back(part.at("dropped"));
  }
  nlohmann::json meta = metadata;
  meta["dropped_events"] = std::move(dropped);  // per rank; non-zero means the cap was hit
  const nlohmann::json trace = {
      {"traceEvents", std::move(trace_events)}, {"displayTimeUnit", "ms"}, {"metadata", std::move(meta)}};

  // Whole or not at all: the viewer may open the trace while a sweep runs.
  replace_file_atomically(path, trace.dump() + "\n");
}

}  // namespace memfront
