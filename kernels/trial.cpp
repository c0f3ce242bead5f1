#include "kernels/trial.h"

#include <cblas.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#include "core/annotate.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/exit_code.h"
#include "core/json_file.h"
#include "kernels/data.h"
#include "kernels/comm.h"
#include "kernels/model.h"
#include "kernels/mpi_session.h"
#include "kernels/ops.h"
#include "kernels/shard.h"
#ifdef MEMFRONT_HAVE_CUDA
#include "kernels/comm_nccl.h"
#include "kernels/cuda/device_memory.h"
#endif
#ifdef MEMFRONT_HAVE_CUPTI
#include "probes/cupti_probe.h"
#endif
#include "probes/host_probe.h"
#include "probes/trace_writer.h"

namespace memfront {

#ifdef MEMFRONT_HAVE_CUPTI
using GpuProbe = CuptiProbe;
#else
// Without CUPTI there is no GPU probe; the trial's code paths for it never run.
class GpuProbe {
 public:
  explicit GpuProbe(int64_t) {}
  void begin_profiled_step() {}
  void end_profiled_step() {}
  void flush() {}
  nlohmann::json summary() const { return nullptr; }
  std::string serialize_gpu_events() const { return {}; }
};
#endif

void check_supported(const Config& c, std::string_view source, int mpi_world) {
  if (c.world != mpi_world) {
    throw InputError(std::string(source) + ": /world: the config asks for world=" + std::to_string(c.world) +
                     " ranks but this job has " + std::to_string(mpi_world) +
                     (mpi_world == 1 ? " (run it under mpirun -np " + std::to_string(c.world) + ")" : " (mpirun -np must match)"));
  }
}

namespace {

nlohmann::json provenance(const Config& config, const TrialOptions& options) {
  return {{"memfront_version", MEMFRONT_VERSION},
          {"host", detect_machine().host},
          {"started", utc_now()},
          {"command", options.command_line},
          {"mem_cap_bytes", options.mem_cap_bytes},
          {"blas_threads", config.train.threads},
          {"comm_timeout_s", options.comm_timeout.count() / 1000.0}};
}

// What one rank measured; rank 0 combines every rank's into the record.
struct RankResult {
  TrialStatus status = TrialStatus::ok;
  std::string error;
  RankMetrics metrics;
  std::vector<double> step_seconds;
  std::map<std::string, std::vector<double>> phase_samples;
  // The same timed steps as seen by the scheduler (probes/host_probe.h).
  std::vector<double> step_cpu_s, step_run_delay_s, step_switches;
  bool has_run_delay = true;
  std::optional<double> load_start, load_end;  // rank 0 only
  int local_ranks = 1;                          // ranks on this rank's machine
  std::vector<double> loss_curve;
  double final_loss = 0;
  double flops_per_step = 0;
};

nlohmann::json to_json(const RankResult& r) {
  return {{"rank", rank_metrics_to_json(r.metrics)},
          {"step_seconds", r.step_seconds},
          {"phase_samples", r.phase_samples},
          {"loss_curve", r.loss_curve},
          {"final_loss", r.final_loss},
          {"flops_per_step", r.flops_per_step}};
}

RankResult rank_result_from_json(std::string_view text, int rank) {
  const std::string where = "rank " + std::to_string(rank) + " result";
  const nlohmann::json j = parse_json_text(text, where);
  RankResult r;
  r.metrics = rank_metrics_from_json(member_as<nlohmann::json>(j, "", "rank", where, "an object"), where);
  r.step_seconds = member_as<std::vector<double>>(j, "", "step_seconds", where, "a list of seconds");
  r.phase_samples = member_as<std::map<std::string, std::vector<double>>>(j, "", "phase_samples", where,
                                                                          "seconds by phase");
  r.loss_curve = member_as<std::vector<double>>(j, "", "loss_curve", where, "a list of losses");
  r.final_loss = member_as<double>(j, "", "final_loss", where, "a number");
  r.flops_per_step = member_as<double>(j, "", "flops_per_step", where, "a number");
  return r;
}

// The device's own view of the memory the arena measured: the memory pool the
// arena allocates from (its high-water mark of bytes in use should equal the
// arena's total peak, up to the pool's rounding) and the driver's count of
// memory in use on the device (which also holds the CUDA context, cuBLAS and
// other processes).
nlohmann::json device_memory_check([[maybe_unused]] Ops& ops) {
#ifdef MEMFRONT_HAVE_CUDA
  const DevicePoolUsage usage = device_pool_usage(ops);
  return {{"pool_used_high_bytes", usage.used_high_bytes},
          {"pool_reserved_high_bytes", usage.reserved_high_bytes},
          {"device_used_bytes", usage.device_total_bytes - usage.device_free_bytes},
          {"device_total_bytes", usage.device_total_bytes},
          {"backend_held_bytes", usage.ops_held_bytes}};
#else
  throw std::logic_error("device_memory_check: a CUDA backend without a CUDA build");
#endif
}

}  // namespace
namespace {

// Trains on this rank and measures. Failures become the result's status.
RankResult train_on_this_rank(const Config& config, const TrialOptions& options, const TokenSource& source,
                              Ops& ops, Arena& arena, Communicator* comm, GpuProbe* gpu_probe) {
  RankResult result;
  const int rank = comm ? comm->rank() : 0;
  result.metrics.rank = rank;
  PhaseTimer phases;
  const int B = config.batch.micro, T = config.model.seq, accum = config.batch.accum;
  const int total_steps = config.train.warmup + config.train.steps;
  const ParamLayout layout(config.model);
  CommCounters timed_start{}, timed_end{};
  try {
    TrainingState state(config, layout, arena, comm, ops);
    Gpt model(config, arena, &state);
    // Tokens are made on the host and uploaded into the backend's memory.
    const uint64_t tokens = uint64_t(B) * T;
    std::vector<int32_t> host_inputs(tokens), host_targets(tokens);
    Buffer inputs = arena.allocate_array<int32_t>(tokens, MemCategory::workspace, "inputs");
    Buffer targets = arena.allocate_array<int32_t>(tokens, MemCategory::workspace, "targets");
    auto load_batch = [&](uint64_t first_sample) {
      fill_batch(source, first_sample, B, T, host_inputs.data(), host_targets.data());
      ops.upload(inputs.data(), host_inputs.data(), tokens * sizeof(int32_t));
      ops.upload(targets.data(), host_targets.data(), tokens * sizeof(int32_t));
    };
    for (int step = 0; step < total_steps; ++step) {
      if (rank == options.crash_rank && step == options.crash_step) {
        std::fprintf(stderr, "memfront-trial: rank %d: crashing at step %d (fault injection)\n", rank, step);
        std::_Exit(code(ExitCode::injected_crash));
      }
      if (step == config.train.warmup && comm) timed_start = comm->counters();
      // The last warmup step is the one the GPU probe profiles: its kernels
      // run one at a time then, so it must not be a timed step.
      const bool profiled = gpu_probe && step == config.train.warmup - 1;
      if (profiled) gpu_probe->begin_profiled_step();
      const double flops_before = model.flops();
      phases.take();
      if (step == 0 && rank == 0) result.load_start = load_average();
      const CpuCounters cpu_before = read_cpu_counters();
      const auto start = std::chrono::steady_clock::now();
      double loss = 0;
      {
        annotate::Range range(annotate::Phase::step);
        model.zero_grads();
        for (int micro = 0; micro < accum; ++micro) {
          // Rank r of step s reads the samples after those of ranks 0..r-1:
          // the global batch is the same whatever the world size.
          const uint64_t first_sample = ((uint64_t(step) * accum + micro) * config.world + rank) * B;
          load_batch(first_sample);
          loss += model.forward_backward(inputs.as<int32_t>(), targets.as<int32_t>(), 1.0f / accum);
        }
        model.optimizer_step(step + 1);
        ops.synchronize();  // a GPU step ends when its queued work does
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const CpuCounters cpu_after = read_cpu_counters();
      if (profiled) gpu_probe->end_profiled_step();
      if (gpu_probe) gpu_probe->flush();  // bounds the probe's buffers; the work is done
      loss /= accum;
      result.loss_curve.push_back(loss);
      if (!std::isfinite(loss)) {
        result.status = TrialStatus::failed;
        result.error = "rank " + std::to_string(rank) + ": training loss became " + std::to_string(loss) +
                       " at step " + std::to_string(step);
        break;
      }
      if (step >= config.train.warmup) {
        result.step_seconds.push_back(seconds);
        result.step_cpu_s.push_back(cpu_after.cpu_s - cpu_before.cpu_s);
        result.step_run_delay_s.push_back(cpu_after.run_delay_s - cpu_before.run_delay_s);
        result.step_switches.push_back(double(cpu_after.involuntary_switches - cpu_before.involuntary_switches));
        result.has_run_delay = result.has_run_delay && cpu_after.has_run_delay && cpu_before.has_run_delay;
        for (const auto& [name, s] : phases.take()) result.phase_samples[name].push_back(s);
        result.flops_per_step = model.flops() - flops_before;
      }
    }
    if (comm) timed_end = comm->counters();
    if (rank == 0) result.load_end = load_average();
    if (result.status == TrialStatus::ok) {
      // Every rank evaluates the same held-out sequences (zero3 needs every
      // rank for its gathers anyway); they agree, and rank 0 reports. The set
      // is fixed by train.eval_sequences whatever batch.micro and world, and
      // goes through in micro-batches of B, the last one in part.
      const int sequences = config.train.eval_sequences;
      double loss_sum = 0;
      for (int first = 0; first < sequences; first += B) {
        load_batch(kEvalSampleBase + uint64_t(first));
        loss_sum += model.evaluate(inputs.as<int32_t>(), targets.as<int32_t>(), std::min(B, sequences - first));
      }
      result.final_loss = loss_sum / (double(sequences) * T);
    }
  } catch (const OutOfMemory& e) {
    result.status = TrialStatus::oom;
    result.error = "rank " + std::to_string(rank) + ": " + e.what();
  } catch (const CommTimeout& e) {
    result.status = TrialStatus::failed;
    result.error = e.what();
  }

  RankMetrics& m = result.metrics;
  m.peak = arena.peak_by_category();
  m.peak_total = arena.peak_total();
  m.rss_peak_bytes = rss_peak_bytes();
  m.pool_reserved_high_bytes = arena.memory().reserved_high_bytes();
  if (ops.backend() == Backend::cuda) m.gpu = device_memory_check(ops);
  if (gpu_probe) {
    gpu_probe->flush();
    m.gpu["cupti"] = gpu_probe->summary();
  }
  m.step_time_median_s = spread_of(result.step_seconds).median;
  if (!result.step_seconds.empty()) {
    RankTiming& timing = m.timing.emplace();
    timing.cpu_s = spread_of(result.step_cpu_s).median;
    if (result.has_run_delay) timing.run_delay_s = spread_of(result.step_run_delay_s).median;
    timing.involuntary_switches = spread_of(result.step_switches).median;
    timing.affinity_cpus = affinity_cpu_count();
  }
  if (!result.step_seconds.empty()) {
    const uint64_t steps = result.step_seconds.size();
    m.bytes_intra_node = (timed_end.intra_node_bytes - timed_start.intra_node_bytes) / steps;
    m.bytes_inter_node = (timed_end.inter_node_bytes - timed_start.inter_node_bytes) / steps;
  }
  return result;
}

// Rank 0's view of the whole trial from every rank's result (`own` is rank
// 0's, which alone read the machine's load).
TrialMetrics combine(const Config& config, const std::vector<RankResult>& ranks, const RankResult& own,
                     const Topology& topology) {
  TrialMetrics m;
  const RankResult& first = ranks.front();
  m.peak_min = first.metrics.peak;
  m.peak_total_min = first.metrics.peak_total;
  for (const RankResult& r : ranks) {
    m.ranks.push_back(r.metrics);
    for (int c = 0; c < kMemCategoryCount; ++c) {
      m.peak_max[c] = std::max(m.peak_max[c], r.metrics.peak[c]);
      m.peak_min[c] = std::min(m.peak_min[c], r.metrics.peak[c]);
    }
    m.peak_total_max = std::max(m.peak_total_max, r.metrics.peak_total);
    m.peak_total_min = std::min(m.peak_total_min, r.metrics.peak_total);
    m.bytes_intra_node += r.metrics.bytes_intra_node;
    m.bytes_inter_node += r.metrics.bytes_inter_node;
  }
  // memfront's own collectives count every byte sent; NCCL's are derived
  // from their algorithms' formulas.
  m.bytes_method = config.backend == Backend::cuda ? "formula" : "counted";
  m.emulated = topology.emulated;

  m.step_time_s = spread_of(first.step_seconds);
  if (first.metrics.timing) {
    TimingEvidence evidence;
    evidence.cores = online_cores();
    for (const RankResult& r : ranks) {
      if (r.metrics.timing) evidence.ranks.push_back(*r.metrics.timing);
    }
    evidence.ranks_on_machine = own.local_ranks;
    evidence.threads_per_rank = config.train.threads;
    evidence.step_median_s = m.step_time_s.median;
    evidence.step_p10_s = m.step_time_s.p10;
    evidence.step_p90_s = m.step_time_s.p90;
    evidence.load_start = own.load_start;
    evidence.load_end = own.load_end;
    m.timing = assess_timing(evidence);
  }
  for (const auto& [name, samples] : first.phase_samples) m.phase_s[name] = spread_of(samples).median;
  for (const auto& [name, seconds] : m.phase_s) {
    if (name == "comm") {
      m.comm_s += seconds;
    } else if (name != "step") {
      m.compute_s += seconds;
    }
  }
  m.exposed_comm_s = m.comm_s;  // the collectives are synchronous: nothing hides them
  m.flops_per_step = 0;
  for (const RankResult& r : ranks) m.flops_per_step += r.flops_per_step;
  if (m.step_time_s.median > 0) {
    const double tokens = double(config.batch.micro) * config.model.seq * config.batch.accum * config.world;
    m.tokens_per_s = tokens / m.step_time_s.median;
    m.gflops = m.flops_per_step / m.step_time_s.median * 1e-9;
  }
  // The training loss of a step is the mean over ranks of their micro-batch losses.
  m.loss_curve.assign(first.loss_curve.size(), 0.0);
  for (const RankResult& r : ranks) {
    for (size_t i = 0; i < m.loss_curve.size() && i < r.loss_curve.size(); ++i) {
      m.loss_curve[i] += r.loss_curve[i] / static_cast<double>(ranks.size());
    }
  }
  m.final_loss = first.final_loss;
  return m;
}

// The backend's communicator: memfront's own collectives over MPI on the CPU,
// NCCL on the GPU (whose bytes are then counted by formula).
std::unique_ptr<Communicator> make_communicator(const Config& config, const Topology& topology, Arena& arena,
                                                std::chrono::milliseconds timeout, Ops& ops) {
  if (config.backend == Backend::cpu) return make_mpi_communicator(topology, arena, timeout);
#ifdef MEMFRONT_HAVE_CUDA
  return make_nccl_communicator(topology, arena, timeout, ops.native_stream());
#else
  (void)ops;
  throw std::logic_error("make_communicator: a CUDA backend without a CUDA build");  // make_ops refused it already
#endif
}

// The trace path as the record gives it: relative to the record file's folder
// when there is a record file, else as given.
std::string trace_path_for_record(const TrialOptions& options) {
  namespace fs = std::filesystem;
  if (options.out.empty()) return options.trace.string();
  const fs::path folder = fs::absolute(options.out).parent_path().lexically_normal();
  const fs::path relative = fs::absolute(options.trace).lexically_normal().lexically_relative(folder);
  return relative.empty() ? options.trace.string() : relative.string();
}

}  // namespace

namespace {

// A record of this config with nothing measured yet.
TrialRecord new_record(const Config& config, const TrialOptions& options) {
  TrialRecord record;
  record.id = config_id(config);
  record.config = config;
  record.provenance = provenance(config, options);
  return record;
}

}  // namespace

TrialRecord unfinished_record(const Config& config, const TrialOptions& options) {
  TrialRecord record = new_record(config, options);
  record.status = TrialStatus::failed;
  record.error = "the trial did not finish: a rank crashed or the job was killed";
  return record;
}

TrialRecord run_trial(const Config& config, const TrialOptions& options) {
  TrialRecord record = new_record(config, options);
  openblas_set_num_threads(config.train.threads);

  // Where this rank runs on its machine. By the timing protocol each rank
  // gets cores of its own (train.threads of them) that no other memfront
  // process holds, when the machine has enough for all its ranks: then no
  // rank's step time includes another's turn. A launcher may have bound the
  // rank already (srun --cpu-bind, mpirun --bind-to).
  const NodePlace place = node_place();
  const int allowed_cpus = affinity_cpu_count();
  const bool bound = (allowed_cpus > 0 && allowed_cpus <= config.train.threads) ||
                     (options.bind && place.local_ranks * config.train.threads <= allowed_cpus &&
                      bind_to_free_cpus(config.train.threads));

  // The backend first: the arena holds its device's memory. On the GPU, rank
  // r uses the device of its machine that its node-local rank picks.
  const int local_rank = config.backend == Backend::cuda ? place.local_rank : 0;
  const std::unique_ptr<Ops> ops = make_ops(config, local_rank, options.config_source);
  record.provenance["device"] = ops->device_name();
  Arena arena(options.mem_cap_bytes, ops->make_memory());
  // Subscribed before the communicator allocates anything, so the memory
  // counters replay the arena from its first byte.
  std::optional<TraceRecorder> trace;
  if (!options.trace.empty()) trace.emplace(arena);
  // CUPTI sees the device from here on: after the backend made its context,
  // before the arena's first allocation.
  std::optional<GpuProbe> gpu_probe;
#ifdef MEMFRONT_HAVE_CUPTI
  if (config.backend == Backend::cuda && options.cupti) gpu_probe.emplace(trace ? trace->start_ns() : annotate::now_ns());
#endif
  Topology topology = Topology::from_config(config);
  std::unique_ptr<Communicator> comm;
  if (config.world > 1) {
    comm = make_communicator(config, topology, arena, options.comm_timeout, *ops);
    comm->set_algorithm(config.placement.collectives == CollectiveAlgo::hierarchical
                            ? CollectiveAlgorithm::hierarchical
                            : CollectiveAlgorithm::flat);
    topology = comm->topology();
    record.provenance["topology"] = topology.describe();
  }
  const auto source = make_token_source(config);

  RankResult mine =
      train_on_this_rank(config, options, *source, *ops, arena, comm.get(), gpu_probe ? &*gpu_probe : nullptr);
  if (mine.metrics.timing) mine.metrics.timing->bound = bound;
  mine.local_ranks = place.local_ranks;
  if (trace) trace->stop();
  if (mine.status != TrialStatus::ok && comm) {
    // The other ranks cannot finish this step without this one: say what
    // happened, then end the job rather than let them wait for the timeout.
    record.status = mine.status;
    record.error = mine.error;
    TrialMetrics partial;
    partial.ranks = {mine.metrics};
    partial.peak_max = partial.peak_min = mine.metrics.peak;
    partial.peak_total_max = partial.peak_total_min = mine.metrics.peak_total;
    partial.loss_curve = mine.loss_curve;
    record.metrics = partial;
    std::fprintf(stderr, "memfront-trial: %s\n", mine.error.c_str());
    if (!options.out.empty()) write_record_file(options.out, record);
    MpiSession::abort(3);
  }

  std::vector<RankResult> all = {mine};
  if (comm) {
    const std::vector<std::string> gathered = all_gather_text(to_json(mine).dump());
    all.clear();
    for (int r = 0; r < comm->world(); ++r) all.push_back(rank_result_from_json(gathered[r], r));
  }
  record.status = mine.status;
  record.error = mine.error;
  record.metrics = combine(config, all, mine, topology);
  record.metrics->loss_floor = source->entropy_rate();
  if (trace) {
    const std::string events =
        gpu_probe ? trace->serialize_events(gpu_probe->serialize_gpu_events()) : trace->serialize_events();
    const std::vector<std::string> per_rank = comm ? all_gather_text(events) : std::vector<std::string>{events};
    if (!comm || comm->rank() == 0) {
      TraceRecorder::write_trace(options.trace, per_rank, {{"trial", record.id}, {"config", to_json(record.config)}});
    }
    record.trace = trace_path_for_record(options);
  }
  return record;
}

std::string format_summary(const TrialRecord& record) {
  std::string out;
  char line[512];
  auto add = [&](const char* format, auto... args) {
    std::snprintf(line, sizeof line, format, args...);
    out += line;
  };
  const Config& c = record.config;
  auto text = [](auto value) { return std::string(to_string(value)); };
  out += "trial " + record.id + "  status " + std::string(to_string(record.status)) +
         (record.error.empty() ? "" : ": " + record.error) + "\n";
  add("model    V=%d T=%d C=%d H=%d L=%d   batch %dx%d per rank   world %d\n", c.model.vocab, c.model.seq,
      c.model.width, c.model.heads, c.model.layers, c.batch.micro, c.batch.accum, c.world);
  add("knobs    checkpoint.every=%d  precision.activations=%s  topk.attention=%d\n", c.checkpoint.every,
      text(c.precision.activations).c_str(), c.topk.attention);
  add("         shard.strategy=%s  quant.grad=%s  quant.weights=%s  topk.grad=%g  collectives=%s\n",
      text(c.shard.strategy).c_str(), text(c.quant.grad).c_str(), text(c.quant.weights).c_str(), c.topk.grad,
      text(c.placement.collectives).c_str());
  if (record.provenance.contains("topology")) {
    out += "nodes    " + record.provenance["topology"].get<std::string>() + "\n";
  }
  if (!record.metrics) return out;
  const TrialMetrics& m = *record.metrics;
  const bool several = m.ranks.size() > 1;
  add("peak memory by category (arena, measured%s)\n", several ? "; max over ranks, and max - min" : "");
  for (MemCategory category : kAllMemCategories) {
    const int i = static_cast<int>(category);
    add("  %-12s %12s", std::string(to_string(category)).c_str(), format_bytes(m.peak_max[i]).c_str());
    if (several) add("   spread %s", format_bytes(m.peak_max[i] - m.peak_min[i]).c_str());
    out += "\n";
  }
  add("  %-12s %12s   (process RSS high-water %s)\n", "total", format_bytes(m.peak_total_max).c_str(),
      format_bytes(m.ranks.empty() ? 0 : m.ranks[0].rss_peak_bytes).c_str());
  if (m.step_time_s.count > 0) {
    add("step time  median %.2f ms  p10 %.2f ms  p90 %.2f ms  (%d timed steps)\n", m.step_time_s.median * 1e3,
        m.step_time_s.p10 * 1e3, m.step_time_s.p90 * 1e3, m.step_time_s.count);
    out += "phases    ";
    for (const char* phase : {"forward", "backward", "recompute", "optimizer", "comm", "quantize", "topk"}) {
      auto it = m.phase_s.find(phase);
      if (it != m.phase_s.end() || std::string_view(phase) == "forward") {
        add(" %s %.2f ms", phase, it == m.phase_s.end() ? 0.0 : it->second * 1e3);
      }
    }
    out += "\n";
    if (several) {
      add("comm       %s intra-node + %s inter-node per step, all ranks (%s%s)   exposed %.2f ms of %.2f ms\n",
          format_bytes(m.bytes_intra_node).c_str(), format_bytes(m.bytes_inter_node).c_str(),
          m.bytes_method.c_str(), m.emulated ? ", emulated inter-node link" : "", m.exposed_comm_s * 1e3,
          m.comm_s * 1e3);
    }
    add("throughput %.0f tokens/s   %.2f GFLOP/s achieved (%.3g FLOP per step)\n", m.tokens_per_s, m.gflops,
        m.flops_per_step);
    if (m.timing) out += timing_line(*m.timing) + "\n";
  }
  if (!m.loss_curve.empty()) {
    add("loss       first step %.4f  last step %.4f  held-out %.4f", m.loss_curve.front(), m.loss_curve.back(),
        m.final_loss);
    if (m.loss_floor) add("  floor %.4f (excess %.4f)", *m.loss_floor, m.final_loss - *m.loss_floor);
    out += " nats\n";
  }
  return out;
}

}  // namespace memfront
