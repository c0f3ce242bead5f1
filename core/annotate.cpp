#include "core/annotate.h"

#include <chrono>
#include <utility>
#include <vector>

#ifdef MEMFRONT_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace memfront::annotate {

namespace {

std::vector<std::pair<int, Listener>>& listeners() {
  static std::vector<std::pair<int, Listener>> all;
  return all;
}
int next_handle = 0;

void notify(std::string_view name, bool is_phase, bool begin) {
  auto& all = listeners();
  if (all.empty()) return;
  RangeEvent event{name, is_phase, begin, now_ns()};
  for (const auto& [handle, listener] : all) listener(event);
}

#ifdef MEMFRONT_HAVE_NVTX
// One NVTX domain, so Nsight and CUPTI group memfront's ranges together.
nvtxDomainHandle_t domain() {
  static nvtxDomainHandle_t handle = nvtxDomainCreateA("memfront");
  return handle;
}

void nvtx_push(std::string_view name) {
  nvtxEventAttributes_t attributes{};
  attributes.version = NVTX_VERSION;
  attributes.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  attributes.messageType = NVTX_MESSAGE_TYPE_ASCII;
  attributes.message.ascii = name.data();  // every name is a NUL-terminated literal
  nvtxDomainRangePushEx(domain(), &attributes);
}
void nvtx_pop() { nvtxDomainRangePop(domain()); }
#else
void nvtx_push(std::string_view) {}
void nvtx_pop() {}
#endif

}  // namespace

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::step: return "step";
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::recompute: return "recompute";
    case Phase::optimizer: return "optimizer";
    case Phase::comm: return "comm";
    case Phase::quantize: return "quantize";
    case Phase::topk: return "topk";
    case Phase::eval: return "eval";
  }
  return "?";
}

int subscribe(Listener listener) {
  listeners().emplace_back(next_handle, std::move(listener));
  return next_handle++;
}

void unsubscribe(int handle) {
  std::erase_if(listeners(), [handle](const auto& entry) { return entry.first == handle; });
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Range::Range(Phase phase) : name_(to_string(phase)), is_phase_(true) {
  nvtx_push(name_);
  notify(name_, true, true);
}

Range::Range(const char* op_name) : name_(op_name), is_phase_(false) {
  nvtx_push(name_);
  notify(name_, false, true);
}

Range::~Range() {
  notify(name_, is_phase_, false);
  nvtx_pop();
}

}  // namespace memfront::annotate
