#include "kernels/trial.h"

#include <cblas.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "core/annotate.h"
#include "core/arena.h"
#include "core/error.h"
#include "kernels/data.h"
#include "kernels/model.h"
#include "probes/host_probe.h"

namespace memfront {

void check_supported(const Config& c, std::string_view source) {
  auto not_yet = [&](const char* pointer, const std::string& what) {
    throw InputError(std::string(source) + ": " + pointer + ": " + what +
                     " is not implemented yet (this build runs single-rank CPU trials)");
  };
  if (c.world != 1) not_yet("/world", "world=" + std::to_string(c.world));
  if (c.shard.strategy != ShardStrategy::ddp) not_yet("/shard/strategy", std::string(to_string(c.shard.strategy)));
  if (c.quant.grad != DType::fp32) not_yet("/quant/grad", "quant.grad=" + std::string(to_string(c.quant.grad)));
  if (c.topk.grad < 1.0) not_yet("/topk/grad", "topk.grad<1");
  if (c.placement.collectives != CollectiveAlgo::flat) not_yet("/placement/collectives", "hierarchical collectives");
  if (c.backend != Backend::cpu) not_yet("/backend", "backend=cuda");
}

namespace {

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

// Fills the memory figures of rank 0 (this process) from the arena.
void record_memory(const Arena& arena, TrialMetrics& m) {
  RankMemory rank;
  rank.rank = 0;
  rank.peak = arena.peak_by_category();
  rank.peak_total = arena.peak_total();
  rank.rss_peak_bytes = rss_peak_bytes();
  m.ranks = {rank};
  m.peak_max = rank.peak;
  m.peak_total_max = rank.peak_total;
}

}  // namespace

TrialRecord run_trial(const Config& config, const TrialOptions& options) {
  TrialRecord record;
  record.id = config_id(config);
  record.config = to_json(config);
  record.provenance = {{"memfront_version", MEMFRONT_VERSION},
                       {"host", detect_machine().host},
                       {"started", utc_now()},
                       {"command", options.command_line},
                       {"mem_cap_bytes", options.mem_cap_bytes},
                       {"blas_threads", config.train.threads}};

  openblas_set_num_threads(config.train.threads);
  Arena arena(options.mem_cap_bytes);
  PhaseTimer phases;
  TrialMetrics metrics;
  const auto source = make_token_source(config);
  metrics.loss_floor = source->entropy_rate();

  const int B = config.batch.micro, T = config.model.seq, accum = config.batch.accum;
  const int total_steps = config.train.warmup + config.train.steps;
  std::vector<double> step_seconds;
  std::map<std::string, std::vector<double>> phase_samples;
  try {
    Gpt model(config, arena);
    Buffer inputs = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "inputs");
    Buffer targets = arena.allocate_array<int32_t>(uint64_t(B) * T, MemCategory::workspace, "targets");
    for (int step = 0; step < total_steps; ++step) {
      const double flops_before = model.flops();
      phases.take();
      const auto start = std::chrono::steady_clock::now();
      double loss = 0;
      {
        annotate::Range range(annotate::Phase::step);
        model.zero_grads();
        for (int micro = 0; micro < accum; ++micro) {
          const uint64_t first_sample = (uint64_t(step) * accum + micro) * config.world * B;
          fill_batch(*source, first_sample, B, T, inputs.as<int32_t>(), targets.as<int32_t>());
          loss += model.forward_backward(inputs.as<int32_t>(), targets.as<int32_t>(), 1.0f / accum);
        }
        model.optimizer_step(step + 1);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      loss /= accum;
      metrics.loss_curve.push_back(loss);
      if (!std::isfinite(loss)) {
        record.status = TrialStatus::failed;
        record.error = "training loss became " + std::to_string(loss) + " at step " + std::to_string(step);
        break;
      }
      if (step >= config.train.warmup) {
        step_seconds.push_back(seconds);
        for (const auto& [name, s] : phases.take()) phase_samples[name].push_back(s);
        metrics.flops_per_step = model.flops() - flops_before;
      }
    }
    if (record.status == TrialStatus::ok) {
      double eval = 0;
      for (int e = 0; e < config.train.eval_batches; ++e) {
        fill_batch(*source, kEvalSampleBase + uint64_t(e) * B, B, T, inputs.as<int32_t>(), targets.as<int32_t>());
        eval += model.evaluate(inputs.as<int32_t>(), targets.as<int32_t>());
      }
      metrics.final_loss = eval / config.train.eval_batches;
    }
  } catch (const OutOfMemory& e) {
    record.status = TrialStatus::oom;
    record.error = e.what();
  }

  record_memory(arena, metrics);
  metrics.step_time_s = spread_of(step_seconds);
  for (const auto& [name, samples] : phase_samples) metrics.phase_s[name] = spread_of(samples).median;
  if (metrics.step_time_s.median > 0) {
    const double tokens = double(B) * T * accum * config.world;
    metrics.tokens_per_s = tokens / metrics.step_time_s.median;
    metrics.gflops = metrics.flops_per_step / metrics.step_time_s.median * 1e-9;
  }
  record.metrics = std::move(metrics);
  return record;
}

std::string format_summary(const TrialRecord& record) {
  std::string out;
  char line[256];
  auto add = [&](const char* format, auto... args) {
    std::snprintf(line, sizeof line, format, args...);
    out += line;
  };
  const auto& c = record.config;
  add("trial %s  status %s%s%s\n", record.id.c_str(), std::string(to_string(record.status)).c_str(),
      record.error.empty() ? "" : ": ", record.error.c_str());
  add("model    V=%d T=%d C=%d H=%d L=%d   batch %dx%d\n", c["model"]["vocab"].get<int>(), c["model"]["seq"].get<int>(),
      c["model"]["width"].get<int>(), c["model"]["heads"].get<int>(), c["model"]["layers"].get<int>(),
      c["batch"]["micro"].get<int>(), c["batch"]["accum"].get<int>());
  add("knobs    checkpoint.every=%d  precision.activations=%s  topk.attention=%d\n",
      c["checkpoint"]["every"].get<int>(), c["precision"]["activations"].get<std::string>().c_str(),
      c["topk"]["attention"].get<int>());
  if (!record.metrics) return out;
  const TrialMetrics& m = *record.metrics;
  add("peak memory by category (arena, measured)\n");
  for (MemCategory category : kAllMemCategories) {
    add("  %-12s %12s\n", std::string(to_string(category)).c_str(),
        format_bytes(m.peak_max[static_cast<int>(category)]).c_str());
  }
  add("  %-12s %12s   (process RSS high-water %s)\n", "total", format_bytes(m.peak_total_max).c_str(),
      format_bytes(m.ranks.empty() ? 0 : m.ranks[0].rss_peak_bytes).c_str());
  if (m.step_time_s.count > 0) {
    add("step time  median %.2f ms  p10 %.2f ms  p90 %.2f ms  (%d timed steps)\n", m.step_time_s.median * 1e3,
        m.step_time_s.p10 * 1e3, m.step_time_s.p90 * 1e3, m.step_time_s.count);
    out += "phases    ";
    for (const char* phase : {"forward", "backward", "recompute", "optimizer"}) {
      auto it = m.phase_s.find(phase);
      add(" %s %.2f ms", phase, it == m.phase_s.end() ? 0.0 : it->second * 1e3);
    }
    out += "\n";
    add("throughput %.0f tokens/s   %.2f GFLOP/s achieved (%.3g FLOP per step)\n", m.tokens_per_s, m.gflops,
        m.flops_per_step);
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
