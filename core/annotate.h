#pragma once
// Annotation ranges: one RAII API marks the phases of a step (and ops inside
// them). Each range emits an NVTX 3 range when memfront is built with the CUDA
// toolkit (seen by Nsight Systems and CUPTI; harmless without a tool attached)
// and notifies memfront's own subscribers (the host probe's phase timers).
//
// Phases may nest: a ZeRO gradient reduction (comm) runs inside backward, a
// quantization inside comm. The host probe charges time to the innermost open
// phase, so the phases of a step add up to the step; "step" itself is what is
// left (loading the batch, zeroing gradients).
#include <cstdint>
#include <functional>
#include <string_view>

namespace memfront::annotate {

enum class Phase { step, forward, backward, recompute, optimizer, comm, quantize, topk, eval };
inline constexpr int kPhaseCount = 9;
std::string_view to_string(Phase phase);

struct RangeEvent {
  std::string_view name;  // phase name or op name
  bool is_phase;
  bool begin;             // true at the start, false at the end
  int64_t time_ns;        // now_ns() clock
};

using Listener = std::function<void(const RangeEvent&)>;
// Process-wide (one rank is one process). Returns a handle for unsubscribe.
int subscribe(Listener listener);
void unsubscribe(int handle);

// Monotonic clock, nanoseconds.
int64_t now_ns();

class Range {
 public:
  explicit Range(Phase phase);
  explicit Range(const char* op_name);  // string literal: kept by pointer
  ~Range();
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  std::string_view name_;
  bool is_phase_;
};

}  // namespace memfront::annotate
