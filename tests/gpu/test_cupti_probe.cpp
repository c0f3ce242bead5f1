// The CUPTI probe: copies, memsets, kernels and allocations made inside
// annotate ranges are charged to those phases and ops; MEMORY2's replay peaks
// at what was allocated; nothing is dropped; the Range Profiler gives the DRAM
// bytes a kernel must write; and the GPU events join the Chrome trace on their
// own threads. TraceGpuEvents needs no device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cupti_test_kernels.h"
#include "gpu_test.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/annotate.h"
#include "core/arena.h"
#include "probes/cupti_probe.h"
#include "probes/trace_writer.h"

using namespace memfront;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// The summary's entry whose name contains `part` (kernel names are demangled
// signatures), or null.
json entry_containing(const json& object, const std::string& part) {
  for (const auto& [name, value] : object.items()) {
    if (name.find(part) != std::string::npos) return value;
  }
  return nullptr;
}

std::string errors_of(const json& summary) { return summary.at("errors").dump(2); }

}  // namespace

TEST(TraceGpuEvents, JoinTheRanksTraceOnTheirOwnThreads) {
  Arena arena;
  TraceRecorder trace(arena);
  { annotate::Range forward(annotate::Phase::forward); }
  trace.stop();
  const std::string gpu = R"([
    {"name": "kernel", "cat": "gpu", "ph": "X", "ts": 1.0, "dur": 2.0, "tid": 2, "args": {"phase": "forward"}},
    {"name": "memcpy DtoD", "cat": "gpu", "ph": "X", "ts": 1.5, "dur": 1.0, "tid": 3, "args": {"bytes": 64}}])";
  const json merged = json::parse(trace.serialize_events(gpu));
  const json plain = json::parse(trace.serialize_events());
  ASSERT_EQ(merged.at("events").size(), plain.at("events").size() + 2);
  EXPECT_EQ(merged.at("events").back().at("name"), "memcpy DtoD");
  EXPECT_THROW(trace.serialize_events(R"({"not": "an array"})"), std::invalid_argument);

  const fs::path path = fs::path(testing::TempDir()) / "trace-gpu-events.json";
  TraceRecorder::write_trace(path, {trace.serialize_events(gpu), trace.serialize_events()});
  std::ifstream in(path);
  const json written = json::parse(in);
  std::map<std::pair<int, int>, std::string> thread_names;
  for (const json& event : written.at("traceEvents")) {
    if (event.at("name") == "thread_name") {
      thread_names[{event.at("pid").get<int>(), event.at("tid").get<int>()}] = event.at("args").at("name");
    }
  }
  EXPECT_EQ(thread_names[std::make_pair(0, kTraceGpuKernelTid)], "gpu kernels");
  EXPECT_EQ(thread_names[std::make_pair(0, kTraceGpuCopyTid)], "gpu copies");
  EXPECT_EQ(thread_names.count({1, kTraceGpuKernelTid}), 0u) << "rank 1 has no GPU events: no GPU threads";
}

TEST(CuptiProbe, ChargesCopiesKernelsAndAllocationsToTheirPhases) {
  MEMFRONT_REQUIRE_GPU();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(cudaFree(nullptr), cudaSuccess);
  CuptiProbe::Options options;
  options.profile_dram = false;
  CuptiProbe probe(annotate::now_ns(), options);
  EXPECT_THROW(CuptiProbe(annotate::now_ns(), options), std::logic_error) << "one probe per process";

  const uint64_t big = 64 * kMiB, small = 32 * kMiB;
  float* first = nullptr;
  float* second = nullptr;
  {
    annotate::Range forward(annotate::Phase::forward);
    ASSERT_EQ(cudaMalloc(&first, big), cudaSuccess);
    ASSERT_EQ(cudaMemset(first, 0, big), cudaSuccess);
    annotate::Range copy("copy_op");
    ASSERT_EQ(cudaMalloc(&second, small), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(second, first, small, cudaMemcpyDeviceToDevice), cudaSuccess);
  }
  {
    annotate::Range backward(annotate::Phase::backward);
    cupti_probe_test_fill(first, big / sizeof(float), 1.0f, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  {
    annotate::Range optimizer(annotate::Phase::optimizer);
    ASSERT_EQ(cudaFree(second), cudaSuccess);
    ASSERT_EQ(cudaFree(first), cudaSuccess);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  probe.flush();

  const json summary = probe.summary();
  SCOPED_TRACE("errors: " + errors_of(summary));
  EXPECT_EQ(summary.at("dropped_records"), 0u);
  const json& phases = summary.at("phases");
  ASSERT_TRUE(phases.contains("forward")) << phases.dump(2);
  EXPECT_EQ(phases["forward"]["memset"], 1u);
  EXPECT_EQ(phases["forward"]["memset_bytes"], big);
  EXPECT_EQ(phases["forward"]["memcpy"], 1u);
  EXPECT_EQ(phases["forward"]["memcpy_bytes"], small);
  EXPECT_EQ(phases["forward"]["kernels"], 0u);
  ASSERT_TRUE(summary.at("ops").contains("copy_op"));
  EXPECT_EQ(summary["ops"]["copy_op"]["memcpy_bytes"], small) << "the copy ran inside the op";
  EXPECT_EQ(summary["ops"]["copy_op"]["memset"], 0u) << "the memset ran before the op began";
  ASSERT_TRUE(phases.contains("backward"));
  EXPECT_EQ(phases["backward"]["kernels"], 1u);
  EXPECT_GT(phases["backward"]["kernel_time_ns"], 0u);

  const json fill = entry_containing(summary.at("kernels"), "cupti_probe_test_fill");
  ASSERT_FALSE(fill.is_null()) << summary.at("kernels").dump(2);
  EXPECT_EQ(fill["count"], 1u);
  EXPECT_EQ(fill["phases"]["backward"], 1u);
  EXPECT_EQ(summary["memcpy"]["DtoD"]["bytes"], small);
  EXPECT_EQ(summary["memset"]["bytes"], big);

  EXPECT_EQ(summary.at("memory2_peak_bytes"), big + small) << "both buffers were live at once";
  EXPECT_EQ(summary["memory2"]["live_bytes"], 0u);
  EXPECT_EQ(summary["memory2"]["allocations"], 2u);
  EXPECT_EQ(summary["memory2"]["releases"], 2u);
  EXPECT_GT(summary.at("dram").at("peak_bytes_per_s").get<double>(), 0.0);

  const json events = json::parse(probe.serialize_gpu_events());
  ASSERT_TRUE(events.is_array());
  bool kernel_event = false, copy_event = false;
  for (const json& event : events) {
    if (event.at("ph") != "X") continue;
    EXPECT_GE(event.at("ts").get<double>(), 0.0) << "after the trace's start: " << event.dump();
    if (event.at("tid") == kTraceGpuKernelTid && event.at("name").get<std::string>().find("cupti_probe_test_fill") !=
                                                     std::string::npos) {
      kernel_event = true;
      EXPECT_EQ(event.at("args").at("phase"), "backward");
    }
    if (event.at("tid") == kTraceGpuCopyTid && event.at("name") == "memcpy DtoD") {
      copy_event = true;
      EXPECT_EQ(event.at("args").at("op"), "copy_op");
      EXPECT_EQ(event.at("args").at("bytes"), small);
    }
  }
  EXPECT_TRUE(kernel_event) << events.dump(2);
  EXPECT_TRUE(copy_event) << events.dump(2);
}

// A 512 MiB fill writes at least 512 MiB minus what the 50 MB L2 may still
// hold: the Range Profiler's DRAM write count must see most of it.
TEST(CuptiProbe, ProfiledStepCountsTheDramBytesEachKernelWrites) {
  MEMFRONT_REQUIRE_GPU();
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(cudaFree(nullptr), cudaSuccess);
  CuptiProbe probe(annotate::now_ns());
  const uint64_t bytes = 512 * kMiB;
  float* data = nullptr;
  ASSERT_EQ(cudaMalloc(&data, bytes), cudaSuccess);
  {
    annotate::Range forward(annotate::Phase::forward);
    probe.begin_profiled_step();
    cupti_probe_test_fill(data, bytes / sizeof(float), 1.0f, nullptr);
    cupti_probe_test_fill(data, bytes / sizeof(float), 2.0f, nullptr);
    probe.end_profiled_step();
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaFree(data), cudaSuccess);
  probe.flush();

  const json summary = probe.summary();
  const json& dram = summary.at("dram");
  if (!dram.at("profiled").get<bool>()) GTEST_SKIP() << "the Range Profiler could not run: " << errors_of(summary);
  SCOPED_TRACE("dram: " + dram.dump(2) + "\nerrors: " + errors_of(summary));
  EXPECT_EQ(dram.at("ranges"), 2u);
  EXPECT_EQ(dram.at("ranges_dropped"), 0u);
  ASSERT_TRUE(dram.contains("by_kernel"));
  const json fill = entry_containing(dram["by_kernel"], "cupti_probe_test_fill");
  ASSERT_FALSE(fill.is_null());
  EXPECT_EQ(fill["kernels"], 2u);
  ASSERT_TRUE(dram.at("by_phase").contains("forward"));
  if (!fill["bytes_written"].is_null()) {
    EXPECT_GE(fill["bytes_written"].get<double>(), 0.85 * 2 * static_cast<double>(bytes));
  }
  if (!fill["fraction_of_peak"].is_null()) {
    EXPECT_GT(fill["fraction_of_peak"].get<double>(), 0.0);
    EXPECT_LT(fill["fraction_of_peak"].get<double>(), 1.5);
  }
}
