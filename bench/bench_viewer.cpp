// The viewer at scale: a 100k-trial results file (random but plausible
// figures), (a) opened and drawn: TrialStore::add_file_now plus a full
// FrontView replot, goal under 2 s; (b) the front recomputed after a
// constraint change: analyse plus replot, goal under 200 ms. Runs offscreen.
#include <benchmark/benchmark.h>

#include <QApplication>
#include <QElapsedTimer>

#include <qcustomplot.h>

#include <filesystem>
#include <random>

#include "core/results.h"
#include "gui/front_view.h"
#include "gui/trial_store.h"

namespace {

using namespace memfront;

constexpr int kTrials = 100000;

// Written once and reused: 100k fsync'd appends take a while.
std::filesystem::path results_file() {
  const std::filesystem::path path = std::filesystem::temp_directory_path() / "memfront-bench-viewer-100k.jsonl";
  if (std::filesystem::exists(path)) return path;
  const std::filesystem::path partial = path.string() + ".partial";
  std::filesystem::remove(partial);
  ResultsHeader header;
  header.study = "bench-viewer";
  header.created = "2026-01-01T00:00:00Z";
  header.study_spec = {{"objectives", {{{"metric", "peak_mem"}, {"goal", "min"}}, {{"metric", "step_time"}, {"goal", "min"}}}},
                       {"space", {{"shard.strategy", {"ddp", "zero1", "zero2", "zero3"}}, {"checkpoint.every", {0, 1, 2, 4}}}}};
  ResultsWriter writer = ResultsWriter::create(partial, header);
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> unit(0, 1);
  const ShardStrategy strategies[] = {ShardStrategy::ddp, ShardStrategy::zero1, ShardStrategy::zero2,
                                      ShardStrategy::zero3};
  for (int i = 0; i < kTrials; ++i) {
    TrialRecord record;
    record.id = std::to_string(1000000 + i);
    const int strategy = i % 4, every = (i / 4) % 4;
    // Normalized as parse_config leaves it: one shard group and one node of the world.
    record.config.world = record.config.shard.group = record.config.placement.ranks_per_node = 2;
    record.config.shard.strategy = strategies[strategy];
    record.config.checkpoint.every = every;
    record.provenance = nlohmann::json::object();
    if (unit(random) < 0.05) {
      record.status = TrialStatus::failed;
      record.error = "synthetic failure";
      writer.append(record);
      continue;
    }
    // Memory falls and time rises with sharding, with noise: a real trade-off.
    const double shard = 1.0 - 0.2 * strategy, recompute = every ? 0.6 : 1.0;
    TrialMetrics m;
    RankMetrics rank;
    const uint64_t activations = uint64_t(8e9 * recompute * (0.5 + unit(random)));
    const uint64_t states = uint64_t(12e9 * shard * (0.8 + 0.4 * unit(random)));
    rank.peak[int(MemCategory::activations)] = activations;
    rank.peak[int(MemCategory::optimizer)] = states;
    rank.peak_total = activations + states;
    m.ranks = {rank};
    m.peak_max = rank.peak;
    m.peak_min = rank.peak;
    m.peak_total_max = m.peak_total_min = rank.peak_total;
    const double step = 0.08 * (1.6 - shard) * (2 - recompute) * (0.7 + 0.6 * unit(random));
    m.step_time_s = {step, step * 0.95, step * 1.1, step * 0.9, step * 1.2, 10};
    m.compute_s = step * 0.8;
    m.comm_s = m.exposed_comm_s = step * 0.2;
    m.tokens_per_s = 4096 / step;
    m.final_loss = 3 + 0.1 * unit(random);
    m.loss_delta = m.final_loss - 3;
    m.bytes_intra_node = uint64_t(1e8 * (2 - shard));
    record.metrics = m;
    writer.append(record);
  }
  std::filesystem::rename(partial, path);
  return path;
}

void BM_OpenAndDraw(benchmark::State& state) {
  const std::filesystem::path path = results_file();
  double load_s = 0, draw_s = 0;
  for (auto _ : state) {
    QElapsedTimer timer;
    timer.start();
    TrialStore store;
    store.add_file_now(QString::fromStdString(path.string()));
    load_s += timer.nsecsElapsed() * 1e-9;
    timer.restart();
    FrontView view(store);
    view.resize(1200, 800);
    view.set_objectives(store.default_objectives());
    view.plot()->replot(QCustomPlot::rpImmediateRefresh);
    draw_s += timer.nsecsElapsed() * 1e-9;
    if (store.trial_count() != kTrials) state.SkipWithError("not every trial was read");
  }
  // Split so a regression points at the store or at the drawing.
  state.counters["load_s"] = benchmark::Counter(load_s, benchmark::Counter::kAvgIterations);
  state.counters["draw_s"] = benchmark::Counter(draw_s, benchmark::Counter::kAvgIterations);
  state.counters["total_s"] = benchmark::Counter(load_s + draw_s, benchmark::Counter::kAvgIterations);
  state.counters["trials"] = kTrials;
}
BENCHMARK(BM_OpenAndDraw)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();

void BM_ConstraintChange(benchmark::State& state) {
  TrialStore store;
  store.add_file_now(QString::fromStdString(results_file().string()));
  FrontView view(store);
  view.resize(1200, 800);
  view.set_objectives(store.default_objectives());
  bool tight = false;
  double analyse_s = 0, draw_s = 0;
  for (auto _ : state) {
    // Alternate two constraints so every iteration changes the front.
    QElapsedTimer timer;
    timer.start();
    view.set_constraints(tight ? "peak_mem <= 12GiB" : "peak_mem <= 16GiB; step_time < 150ms");
    analyse_s += timer.nsecsElapsed() * 1e-9;  // analyse + graph rebuild
    timer.restart();
    view.plot()->replot(QCustomPlot::rpImmediateRefresh);
    draw_s += timer.nsecsElapsed() * 1e-9;
    tight = !tight;
  }
  state.counters["recompute_ms"] = benchmark::Counter(analyse_s * 1e3, benchmark::Counter::kAvgIterations);
  state.counters["draw_ms"] = benchmark::Counter(draw_s * 1e3, benchmark::Counter::kAvgIterations);
  state.counters["total_ms"] = benchmark::Counter((analyse_s + draw_s) * 1e3, benchmark::Counter::kAvgIterations);
  state.counters["front"] = double(view.analysis().front.size());
  // analyse() alone, to tell the data layer's share from the widget's.
  QElapsedTimer timer;
  timer.start();
  benchmark::DoNotOptimize(analyse(store, view.settings()));
  state.counters["analyse_ms"] = timer.nsecsElapsed() * 1e-6;
}
BENCHMARK(BM_ConstraintChange)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
