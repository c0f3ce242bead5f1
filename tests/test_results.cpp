// Results records and JSONL I/O (core/results.h): JSON layout and round trips,
// percentiles, strict reading with pointed error messages, the writer, and the
// crash rules (a truncated last line is reported and repaired, nothing else is
// forgiven). Also holds results/schema.json to what the code writes.
#include <gtest/gtest.h>

#include "tests/input_error_of.h"
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/results.h"

namespace memfront {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kResultsData = fs::path(MEMFRONT_TEST_DATA) / "results";
const fs::path kSourceRoot = fs::path(MEMFRONT_TEST_DATA "/../..");

// Tests that write files get fresh paths under the test temp dir, named after
// the test, and removed when it ends.
class ResultsFileTest : public testing::Test {
 protected:
  fs::path temp_path(std::string_view suffix) {
    const auto* test = testing::UnitTest::GetInstance()->current_test_info();
    const fs::path path = fs::path(testing::TempDir()) /
                          ("memfront_results_" + std::to_string(::getpid()) + "_" +
                           test->name() + std::string(suffix));
    fs::remove(path);
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const fs::path& path : paths_) fs::remove(path);
  }

 private:
  std::vector<fs::path> paths_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The message of the InputError that `action` throws; fails the test if none.
ResultsHeader sample_header() {
  ResultsHeader header;
  header.study = "unit";
  header.machine.host = "node17";
  header.machine.cpu = "Test CPU";
  header.machine.cores = 16;
  header.machine.memory_bytes = 137438953472ull;
  header.machine.mpi = "Open MPI 4.1.4";
  header.machine.blas = "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64 (kernels: Zen)";
  header.memfront_version = "0.1.0";
  header.created = "2026-11-23T02:10:00Z";
  return header;
}

TrialMetrics sample_metrics() {
  TrialMetrics metrics;
  for (int rank = 0; rank < 2; ++rank) {
    RankMetrics memory;
    memory.rank = rank;
    for (MemCategory category : kAllMemCategories) {
      memory.peak[static_cast<int>(category)] = 1000 * (static_cast<int>(category) + 1) + rank;
    }
    memory.peak_total = 20000 + rank;
    memory.rss_peak_bytes = 40000000 + rank;
    metrics.ranks.push_back(memory);
  }
  metrics.peak_max = metrics.ranks[1].peak;
  metrics.peak_total_max = metrics.ranks[1].peak_total;
  metrics.step_time_s = spread_of({0.012, 0.013, 0.011, 0.015});
  metrics.phase_s = {{"forward", 0.004}, {"backward", 0.007}, {"comm", 0.001}};
  metrics.tokens_per_s = 40960.5;
  metrics.flops_per_step = 1.4e9;
  metrics.gflops = 112.0;
  metrics.bytes_intra_node = 882176;
  metrics.bytes_inter_node = 441088;
  metrics.bytes_method = "formula";
  metrics.emulated = true;
  metrics.loss_curve = {5.5, 5.1, 4.75};
  metrics.final_loss = 4.6;
  metrics.loss_floor = 2.8;
  return metrics;
}

TrialRecord sample_record(std::string id) {
  TrialRecord record;
  record.id = std::move(id);
  record.config = parse_config(json{{"world", 2}, {"shard", {{"strategy", "zero2"}}}}, "sample config");
  record.metrics = sample_metrics();
  record.trace = "traces/" + record.id + ".json";
  record.provenance = {{"memfront_version", "0.1.0"}, {"command", "memfront-trial --config c.json"}};
  return record;
}

void expect_same_spread(const Spread& a, const Spread& b) {
  EXPECT_EQ(a.median, b.median);
  EXPECT_EQ(a.p10, b.p10);
  EXPECT_EQ(a.p90, b.p90);
  EXPECT_EQ(a.min, b.min);
  EXPECT_EQ(a.max, b.max);
  EXPECT_EQ(a.count, b.count);
}

void expect_same_record(const TrialRecord& a, const TrialRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.config, b.config);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.prediction, b.prediction);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(a.provenance, b.provenance);
  ASSERT_EQ(a.metrics.has_value(), b.metrics.has_value());
  if (!a.metrics) return;
  const TrialMetrics& x = *a.metrics;
  const TrialMetrics& y = *b.metrics;
  ASSERT_EQ(x.ranks.size(), y.ranks.size());
  for (size_t i = 0; i < x.ranks.size(); ++i) {
    EXPECT_EQ(x.ranks[i].rank, y.ranks[i].rank);
    EXPECT_EQ(x.ranks[i].peak, y.ranks[i].peak);
    EXPECT_EQ(x.ranks[i].peak_total, y.ranks[i].peak_total);
    EXPECT_EQ(x.ranks[i].rss_peak_bytes, y.ranks[i].rss_peak_bytes);
    EXPECT_EQ(x.ranks[i].pool_reserved_high_bytes, y.ranks[i].pool_reserved_high_bytes);
  }
  EXPECT_EQ(x.peak_max, y.peak_max);
  EXPECT_EQ(x.peak_total_max, y.peak_total_max);
  expect_same_spread(x.step_time_s, y.step_time_s);
  EXPECT_EQ(x.phase_s, y.phase_s);
  EXPECT_EQ(x.tokens_per_s, y.tokens_per_s);
  EXPECT_EQ(x.flops_per_step, y.flops_per_step);
  EXPECT_EQ(x.gflops, y.gflops);
  EXPECT_EQ(x.bytes_intra_node, y.bytes_intra_node);
  EXPECT_EQ(x.bytes_inter_node, y.bytes_inter_node);
  EXPECT_EQ(x.bytes_method, y.bytes_method);
  EXPECT_EQ(x.emulated, y.emulated);
  EXPECT_EQ(x.loss_curve, y.loss_curve);
  EXPECT_EQ(x.final_loss, y.final_loss);
  EXPECT_EQ(x.loss_floor, y.loss_floor);
  EXPECT_EQ(x.loss_delta, y.loss_delta);
}

// The error record_from_json gives after `edit` changes a valid trial line.
std::string record_error_after(const std::function<void(json&)>& edit) {
  json line = to_json(sample_record("0123456789abcdef"));
  edit(line);
  return input_error_of([&] { record_from_json(line, "r.jsonl:7"); });
}

// A results file with the header and trials "a", "b", "c"; returns its text.
std::string write_three_trials(const fs::path& path) {
  ResultsWriter writer = ResultsWriter::create(path, sample_header());
  for (const char* id : {"a", "b", "c"}) writer.append(sample_record(id));
  return read_text(path);
}

// ---------------------------------------------------------------------------
// Status, machine, spread

TEST(Results, TrialStatusNamesRoundTrip) {
  for (TrialStatus status : {TrialStatus::ok, TrialStatus::failed, TrialStatus::timeout,
                             TrialStatus::oom, TrialStatus::pruned, TrialStatus::invalid}) {
    EXPECT_EQ(parse_trial_status(to_string(status)), status);
  }
  EXPECT_EQ(to_string(TrialStatus::oom), "oom");
  EXPECT_FALSE(parse_trial_status("OK"));
  EXPECT_FALSE(parse_trial_status(""));
}

TEST(Results, DetectMachineSeesThisHost) {
  const MachineInfo machine = detect_machine();
  EXPECT_FALSE(machine.host.empty());
  EXPECT_GE(machine.cores, 1);
  EXPECT_GT(machine.memory_bytes, 0u);
  // The GPU is named when the NVIDIA driver lists one; CUDA and NCCL versions
  // come together, from a build with CUDA.
  std::error_code error;
  const bool driver_lists_a_gpu =
      std::filesystem::exists("/proc/driver/nvidia/gpus", error) &&
      !std::filesystem::is_empty("/proc/driver/nvidia/gpus", error);
  EXPECT_EQ(machine.gpu.empty(), !driver_lists_a_gpu) << machine.gpu;
  EXPECT_EQ(machine.cuda.empty(), machine.nccl.empty());
  // OpenBLAS is one of memfront's dependencies: its kernel choice is always named.
  ASSERT_TRUE(machine.blas);
  EXPECT_EQ(machine.blas->rfind("OpenBLAS", 0), 0u) << *machine.blas;
  EXPECT_NE(machine.blas->find("(kernels: "), std::string::npos) << *machine.blas;
}

TEST(Results, SpreadOfOddSample) {
  // Sorted: 1 2 3 4 5. Position q*(n-1): p10 at 0.4 -> 1.4, p90 at 3.6 -> 4.6.
  const Spread spread = spread_of({5, 1, 4, 2, 3});
  EXPECT_DOUBLE_EQ(spread.median, 3.0);
  EXPECT_DOUBLE_EQ(spread.p10, 1.4);
  EXPECT_DOUBLE_EQ(spread.p90, 4.6);
  EXPECT_EQ(spread.min, 1.0);
  EXPECT_EQ(spread.max, 5.0);
  EXPECT_EQ(spread.count, 5);
}

TEST(Results, SpreadOfEvenSample) {
  // Sorted: 10 20 30 40. Median at 1.5 -> 25, p10 at 0.3 -> 13, p90 at 2.7 -> 37.
  const Spread spread = spread_of({40, 10, 30, 20});
  EXPECT_DOUBLE_EQ(spread.median, 25.0);
  EXPECT_DOUBLE_EQ(spread.p10, 13.0);
  EXPECT_DOUBLE_EQ(spread.p90, 37.0);
  EXPECT_EQ(spread.min, 10.0);
  EXPECT_EQ(spread.max, 40.0);
  EXPECT_EQ(spread.count, 4);
}

TEST(Results, SpreadOfOneAndNoSamples) {
  const Spread one = spread_of({0.25});
  EXPECT_EQ(one.median, 0.25);
  EXPECT_EQ(one.p10, 0.25);
  EXPECT_EQ(one.p90, 0.25);
  EXPECT_EQ(one.count, 1);
  const Spread none = spread_of({});
  EXPECT_EQ(none.median, 0.0);
  EXPECT_EQ(none.max, 0.0);
  EXPECT_EQ(none.count, 0);
}

TEST(Results, SpreadOfRejectsNaN) {
  EXPECT_THROW(spread_of({1.0, std::nan(""), 2.0}), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// JSON layout and round trips

TEST(Results, HeaderLayoutAndRoundTrip) {
  const ResultsHeader header = sample_header();
  const json line = to_json(header);
  EXPECT_EQ(line["schema"], "memfront.results/1");
  EXPECT_EQ(line["kind"], "header");
  EXPECT_EQ(line["machine"]["memory_bytes"], 137438953472ull);
  EXPECT_EQ(line["machine"]["gpu"], "");

  const ResultsHeader back = header_from_json(line, "h");
  EXPECT_EQ(back.schema, header.schema);
  EXPECT_EQ(back.study, header.study);
  EXPECT_EQ(back.machine.host, header.machine.host);
  EXPECT_EQ(back.machine.cpu, header.machine.cpu);
  EXPECT_EQ(back.machine.cores, header.machine.cores);
  EXPECT_EQ(back.machine.memory_bytes, header.machine.memory_bytes);
  EXPECT_EQ(back.machine.mpi, header.machine.mpi);
  EXPECT_EQ(back.machine.blas, header.machine.blas);
  EXPECT_EQ(back.memfront_version, header.memfront_version);
  EXPECT_EQ(back.created, header.created);
}

TEST(Results, TrialLayout) {
  const json line = to_json(sample_record("0123456789abcdef"));
  EXPECT_EQ(line["kind"], "trial");
  EXPECT_EQ(line["status"], "ok");
  EXPECT_TRUE(line["prediction"].is_null());
  const json& metrics = line["metrics"];

  // Peaks are keyed by category name, plus the total.
  const json& peaks = metrics["peak_bytes"];
  EXPECT_EQ(peaks.size(), kAllMemCategories.size() + 1);
  EXPECT_EQ(peaks["params"], 1001u);
  EXPECT_EQ(peaks["workspace"], 7001u);
  EXPECT_EQ(peaks["total"], 20001u);
  EXPECT_EQ(metrics["ranks"][0]["peak_bytes"]["grads"], 2000u);
  EXPECT_EQ(metrics["ranks"][0]["peak_bytes"]["total"], 20000u);
  EXPECT_EQ(metrics["ranks"][1]["rss_peak_bytes"], 40000001u);

  EXPECT_DOUBLE_EQ(metrics["step_time_s"]["median"].get<double>(), 0.0125);
  EXPECT_EQ(metrics["step_time_s"]["count"], 4);
  EXPECT_EQ(metrics["phase_s"]["backward"], 0.007);
  EXPECT_EQ(metrics["comm"]["method"], "formula");
  EXPECT_EQ(metrics["comm"]["emulated"], true);
  EXPECT_EQ(metrics["loss"]["curve"].size(), 3u);
  EXPECT_EQ(metrics["loss"]["floor"], 2.8);
  EXPECT_TRUE(metrics["loss"]["delta"].is_null());
}

TEST(Results, TrialRoundTrip) {
  TrialRecord record = sample_record("0123456789abcdef");
  record.metrics->loss_delta = -0.125;
  Prediction prediction;
  prediction.peak[static_cast<int>(MemCategory::activations)] = 4096;
  prediction.peak_total = 20480;
  prediction.step_time_s = 0.011;
  prediction.calibrated = true;
  record.prediction = prediction;
  const TrialRecord back = record_from_json(to_json(record), "r");
  expect_same_record(back, record);
}

// The host pool's reservation is written for the CPU backend and absent for
// the GPU's, whose pool reports under "gpu".
TEST(Results, PoolReservationIsWrittenWhereThereIsOne) {
  TrialRecord record = sample_record("0123456789abcdef");
  record.metrics->ranks[0].pool_reserved_high_bytes = 30000;
  const json line = to_json(record);
  EXPECT_EQ(line["metrics"]["ranks"][0]["pool_reserved_high_bytes"], 30000u);
  EXPECT_FALSE(line["metrics"]["ranks"][1].contains("pool_reserved_high_bytes"));
  const TrialRecord back = record_from_json(line, "r");
  expect_same_record(back, record);
  EXPECT_EQ(back.metrics->ranks[0].pool_reserved_high_bytes, std::optional<uint64_t>(30000));
  EXPECT_FALSE(back.metrics->ranks[1].pool_reserved_high_bytes);
}

// The prediction is read once, typed: what memfront writes reads back the
// same and writes the same bytes; anything else is an error at its pointer.
TEST(Results, PredictionIsReadTypedAndErrorsNameItsPointer) {
  TrialRecord record = sample_record("0123456789abcdef");
  Prediction prediction;
  prediction.peak_total = 123456789;
  prediction.bytes_inter_node = 24;
  prediction.flops_per_step = 1.5e9;
  prediction.step_time_s = 0.0125;
  record.prediction = prediction;
  const json line = to_json(record);
  const TrialRecord back = record_from_json(line, "r");
  EXPECT_EQ(back.prediction, prediction);
  EXPECT_EQ(to_json(back).dump(), line.dump());

  json without = line;
  without["prediction"] = nullptr;
  EXPECT_FALSE(record_from_json(without, "r").prediction);
  EXPECT_EQ(record_error_after([](json& l) {
              l["prediction"] = to_json(Prediction{});
              l["prediction"]["comm"]["bytes_inter_node"] = -1;
            }),
            "r.jsonl:7: /prediction/comm/bytes_inter_node: expected a non-negative integer, got number -1");
  EXPECT_EQ(record_error_after([](json& l) { l["prediction"] = {{"peak_bytes", 20480}}; }),
            "r.jsonl:7: /prediction/peak_bytes: expected an object, got number 20480");
}

TEST(Results, TrialWithoutMetricsRoundTrip) {
  TrialRecord record = sample_record("0123456789abcdef");
  record.status = TrialStatus::oom;
  record.error = "rank 0: activations: allocating 48.0 MiB would pass the capacity of 64.0 MiB";
  record.metrics.reset();
  const json line = to_json(record);
  EXPECT_TRUE(line["metrics"].is_null());
  expect_same_record(record_from_json(line, "r"), record);
}

TEST(Results, NonFiniteNumbersAreWrittenAsStrings) {
  TrialRecord record = sample_record("0123456789abcdef");
  record.metrics->loss_curve = {5.5, std::numeric_limits<double>::infinity(), std::nan("")};
  record.metrics->final_loss = std::nan("");
  record.metrics->loss_delta = -std::numeric_limits<double>::infinity();
  const json line = to_json(record);
  EXPECT_EQ(line["metrics"]["loss"]["curve"], json({5.5, "Infinity", "NaN"}));
  EXPECT_EQ(line["metrics"]["loss"]["final"], "NaN");
  EXPECT_EQ(line["metrics"]["loss"]["delta"], "-Infinity");

  const TrialMetrics back = *record_from_json(line, "r").metrics;
  EXPECT_EQ(back.loss_curve[1], std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(back.loss_curve[2]));
  EXPECT_TRUE(std::isnan(back.final_loss));
  EXPECT_EQ(back.loss_delta, -std::numeric_limits<double>::infinity());
}

TEST(Results, UnknownKeysAreTolerated) {
  json line = to_json(sample_record("0123456789abcdef"));
  line["added_in_a_later_version"] = {1, 2, 3};
  line["metrics"]["comm"]["retransmits"] = 0;
  line["metrics"]["peak_bytes"]["pinned"] = 64;
  const TrialRecord back = record_from_json(line, "r");
  expect_same_record(back, sample_record("0123456789abcdef"));

  json header = to_json(sample_header());
  header["machine"]["numa_nodes"] = 2;
  EXPECT_EQ(header_from_json(header, "h").machine.cores, 16);
}

// ---------------------------------------------------------------------------
// Error messages: "<where>: <json pointer>: <what was expected>"

TEST(Results, IllTypedFieldNamesItsPointer) {
  EXPECT_EQ(record_error_after([](json& line) {
              line["metrics"]["step_time_s"]["median"] = "fast";
            }),
            "r.jsonl:7: /metrics/step_time_s/median: expected a number, got string \"fast\"");
  EXPECT_EQ(record_error_after([](json& line) {
              line["metrics"]["ranks"][1]["peak_bytes"]["grads"] = -5;
            }),
            "r.jsonl:7: /metrics/ranks/1/peak_bytes/grads: expected a non-negative integer, "
            "got number -5");
  EXPECT_EQ(record_error_after([](json& line) { line["metrics"]["comm"]["emulated"] = 1; }),
            "r.jsonl:7: /metrics/comm/emulated: expected a boolean, got number 1");
  EXPECT_EQ(record_error_after([](json& line) { line["config"] = json::array(); }),
            "r.jsonl:7: /config: expected an object, got array");
  EXPECT_EQ(record_error_after([](json& line) { line["metrics"]["loss"]["curve"][2] = nullptr; }),
            "r.jsonl:7: /metrics/loss/curve/2: expected a number, got null");
}

TEST(Results, ConfigIsParsedOnReadAndItsErrorsAreUnderConfig) {
  // The record holds the typed config, normalized: a group the file leaves out is the world's.
  json line = to_json(sample_record("0123456789abcdef"));
  line["config"] = {{"world", 2}, {"shard", {{"strategy", "zero2"}}}};
  const TrialRecord back = record_from_json(line, "r.jsonl:7");
  EXPECT_EQ(back.config.shard.strategy, ShardStrategy::zero2);
  EXPECT_EQ(back.config.shard.group, 2);
  EXPECT_EQ(back.config.placement.ranks_per_node, 2);

  // A config this memfront's rules reject (an older file's) is a malformed record.
  EXPECT_EQ(record_error_after([](json& l) { l["config"]["world"] = 3; }),
            "r.jsonl:7: /config/placement/ranks_per_node: must divide world=3, got 2");
  EXPECT_EQ(record_error_after([](json& l) { l["config"]["shard"]["strategi"] = "zero1"; }),
            "r.jsonl:7: /config/shard/strategi: unknown key (expected one of: group, strategy)");
  EXPECT_EQ(record_error_after([](json& l) { l["config"]["checkpoint"] = 1; }),
            "r.jsonl:7: /config/checkpoint: expected an object, got integer");
}

TEST(Results, MissingFieldNamesItsPointer) {
  EXPECT_EQ(record_error_after([](json& line) {
              line["metrics"]["step_time_s"].erase("p90");
            }),
            "r.jsonl:7: /metrics/step_time_s/p90: missing (expected a number)");
  EXPECT_EQ(record_error_after([](json& line) {
              line["metrics"]["ranks"][0]["peak_bytes"].erase("total");
            }),
            "r.jsonl:7: /metrics/ranks/0/peak_bytes/total: missing (expected a non-negative integer)");
  EXPECT_EQ(record_error_after([](json& line) { line.erase("provenance"); }),
            "r.jsonl:7: /provenance: missing (expected an object)");
  EXPECT_EQ(record_error_after([](json& line) { line["metrics"]["loss"].erase("delta"); }),
            "r.jsonl:7: /metrics/loss/delta: missing (expected a number or null)");
}

TEST(Results, BadValuesAreNamed) {
  EXPECT_EQ(record_error_after([](json& line) { line["status"] = "crashed"; }),
            "r.jsonl:7: /status: expected one of ok, failed, timeout, oom, pruned, invalid, killed, "
            "got string \"crashed\"");
  EXPECT_EQ(record_error_after([](json& line) { line["kind"] = "header"; }),
            "r.jsonl:7: /kind: expected \"trial\", got string \"header\"");
  EXPECT_EQ(record_error_after([](json& line) { line["id"] = ""; }),
            "r.jsonl:7: /id: expected a non-empty string (the config id), got string \"\"");
  EXPECT_EQ(record_error_after([](json& line) { line["metrics"]["comm"]["method"] = "guessed"; }),
            "r.jsonl:7: /metrics/comm/method: expected \"counted\" or \"formula\", "
            "got string \"guessed\"");
  // Keys are escaped as RFC 6901 says ("/" is "~1").
  EXPECT_EQ(record_error_after([](json& line) { line["metrics"]["phase_s"]["comm/ring"] = true; }),
            "r.jsonl:7: /metrics/phase_s/comm~1ring: expected a number, got boolean true");
  EXPECT_EQ(input_error_of([] { record_from_json(json::array(), "r.jsonl:7"); }),
            "r.jsonl:7: /: expected an object, got array");
}

TEST(Results, WrongSchemaVersionIsRejected) {
  json header = to_json(sample_header());
  header["schema"] = "memfront.results/2";
  EXPECT_EQ(input_error_of([&] { header_from_json(header, "r.jsonl:1"); }),
            "r.jsonl:1: /schema: unsupported schema 'memfront.results/2', "
            "this memfront reads memfront.results/1");
  header.erase("schema");
  EXPECT_EQ(input_error_of([&] { header_from_json(header, "r.jsonl:1"); }),
            "r.jsonl:1: /schema: missing (expected a string)");
}

TEST(Results, HeaderFieldErrorsNameTheirPointer) {
  json header = to_json(sample_header());
  header["machine"]["cores"] = 2.5;
  EXPECT_EQ(input_error_of([&] { header_from_json(header, "r.jsonl:1"); }),
            "r.jsonl:1: /machine/cores: expected a non-negative integer no larger than "
            "2147483647, got number 2.5");
  header = to_json(sample_header());
  header["kind"] = "trial";
  EXPECT_EQ(input_error_of([&] { header_from_json(header, "r.jsonl:1"); }),
            "r.jsonl:1: /kind: expected \"header\", got string \"trial\"");
}

// ---------------------------------------------------------------------------
// Writer and reader

TEST_F(ResultsFileTest, WriterCreatesAppendsAndReadsBack) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  // One line per record, each complete.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4);
  EXPECT_EQ(text.back(), '\n');

  const ResultsFile file = read_results(path);
  EXPECT_EQ(file.header.study, "unit");
  EXPECT_EQ(file.header.machine.mpi, "Open MPI 4.1.4");
  EXPECT_FALSE(file.truncated_tail);
  ASSERT_EQ(file.trials.size(), 3u);
  expect_same_record(file.trials[0], sample_record("a"));
  expect_same_record(file.trials[2], sample_record("c"));
}

// A file read a line at a time: each trial handed over with its line, which
// reads it again; the outline holds the header and revisions without the
// trials; revisions number on from 2 and the last one's spec is the file's.
TEST_F(ResultsFileTest, StreamedTrialsAreReadAgainFromTheirLines) {
  const fs::path path = temp_path(".jsonl");
  write_three_trials(path);
  {
    ResultsWriter writer = ResultsWriter::open_append(path);
    writer.append(StudyRevision{2, "2026-01-01T00:00:00Z", {{"study", "unit"}, {"steps", 4}}, {"/steps: 3 -> 4"}});
    writer.append(sample_record("d"));
  }
  std::vector<std::pair<std::string, JsonlLine>> streamed;
  const ResultsFile outline = read_results(path, [&](TrialRecord&& record, const JsonlLine& line) {
    streamed.emplace_back(record.id, line);
  });
  EXPECT_TRUE(outline.trials.empty());
  ASSERT_EQ(streamed.size(), 4u);
  EXPECT_EQ(streamed[3].first, "d");
  EXPECT_EQ(streamed[3].second.number, 6);
  for (const auto& [id, line] : streamed) EXPECT_EQ(read_record_at(path, line.begin, line.number).id, id);
  for (const ResultsFile& file : {outline, read_results_outline(path), read_results(path)}) {
    ASSERT_EQ(file.revisions.size(), 1u);
    EXPECT_EQ(file.study_revision(), 2);
    EXPECT_EQ(file.study_spec()["steps"], 4);
  }
  EXPECT_EQ(read_results(path).trials.size(), 4u);
  EXPECT_EQ(input_error_of([&] { read_record_at(path, streamed[3].second.begin - 10, 5); }).substr(0, path.string().size() + 3),
            path.string() + ":5:");

  // A revision out of turn is refused with its line.
  {
    ResultsWriter writer = ResultsWriter::open_append(path);
    writer.append(StudyRevision{4, "2026-01-01T00:00:00Z", {{"study", "unit"}}, {}});
  }
  EXPECT_EQ(input_error_of([&] { read_results(path); }),
            path.string() + ":7: /revision: expected 3 (the revision after the last), got 4");
  EXPECT_EQ(input_error_of([&] { read_results_outline(path); }),
            path.string() + ":7: /revision: expected 3 (the revision after the last), got 4");
}

TEST_F(ResultsFileTest, CreateRefusesAnExistingFile) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  const std::string message =
      input_error_of([&] { ResultsWriter::create(path, sample_header()); });
  EXPECT_NE(message.find(path.string() + ": results file already exists"), std::string::npos)
      << message;
  EXPECT_EQ(read_text(path), text);
}

TEST_F(ResultsFileTest, AppendRefusesARecordTheReaderWouldReject) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  ResultsWriter writer = ResultsWriter::open_append(path);
  TrialRecord record = sample_record("d");
  record.provenance = nullptr;
  EXPECT_THROW(writer.append(record), std::invalid_argument);
  EXPECT_EQ(read_text(path), text);
}

TEST_F(ResultsFileTest, TruncatedLastLineIsReportedAndIgnored) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  // A crash mid-write: 30 bytes of a fifth line, no '\n'.
  write_text(path, text + to_json(sample_record("d")).dump().substr(0, 30));

  const ResultsFile file = read_results(path);
  ASSERT_EQ(file.trials.size(), 3u);
  EXPECT_EQ(file.trials[2].id, "c");
  ASSERT_TRUE(file.truncated_tail);
  EXPECT_EQ(*file.truncated_tail,
            path.string() + ":5: truncated last line ignored (30 bytes; a crash mid-write)");
}

TEST_F(ResultsFileTest, CompleteLastLineWithoutNewlineIsAccepted) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  write_text(path, text.substr(0, text.size() - 1));
  const ResultsFile file = read_results(path);
  EXPECT_EQ(file.trials.size(), 3u);
  EXPECT_FALSE(file.truncated_tail);

  // open_append keeps that line and ends it, rather than cutting it off.
  ResultsWriter writer = ResultsWriter::open_append(path);
  EXPECT_TRUE(writer.repaired_tail());
  writer.append(sample_record("d"));
  EXPECT_EQ(read_results(path).trials.size(), 4u);
}

TEST_F(ResultsFileTest, OpenAppendRepairsATruncatedTail) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  write_text(path, text + "{\"kind\":\"trial\",\"id\":\"d\",\"con");

  ResultsWriter writer = ResultsWriter::open_append(path);
  EXPECT_TRUE(writer.repaired_tail());
  EXPECT_EQ(read_text(path), text);
  writer.append(sample_record("d"));

  const ResultsFile file = read_results(path);
  EXPECT_FALSE(file.truncated_tail);
  ASSERT_EQ(file.trials.size(), 4u);
  expect_same_record(file.trials[3], sample_record("d"));
}

TEST_F(ResultsFileTest, OpenAppendOfAnIntactFileChangesNothing) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  ResultsWriter writer = ResultsWriter::open_append(path);
  EXPECT_FALSE(writer.repaired_tail());
  EXPECT_EQ(writer.path(), path);
  EXPECT_EQ(read_text(path), text);
}

TEST_F(ResultsFileTest, CorruptMiddleLineIsAnError) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  const size_t line3 = text.find('\n', text.find('\n') + 1) + 1;

  // Not JSON: a line cut short that is not the last one.
  write_text(path, text.substr(0, line3 + 40) + "\n" + text.substr(line3));
  std::string message = input_error_of([&] { read_results(path); });
  EXPECT_EQ(message.rfind(path.string() + ":3:41: not valid JSON: ", 0), 0u) << message;

  // JSON, but a field of the wrong type.
  json record = to_json(sample_record("b"));
  record["metrics"]["step_time_s"]["median"] = "fast";
  const size_t line4 = text.find('\n', line3) + 1;
  write_text(path, text.substr(0, line3) + record.dump() + "\n" + text.substr(line4));
  message = input_error_of([&] { read_results(path); });
  EXPECT_EQ(message, path.string() +
                         ":3: /metrics/step_time_s/median: expected a number, got string \"fast\"");
  // open_append refuses such a file too.
  EXPECT_EQ(input_error_of([&] { ResultsWriter::open_append(path); }), message);
}

TEST_F(ResultsFileTest, ARecordWhoseConfigNoLongerParses) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  const size_t line3 = text.find('\n', text.find('\n') + 1) + 1;
  const size_t line4 = text.find('\n', line3) + 1;
  json record = to_json(sample_record("b"));
  record["config"]["world"] = 3;  // placement.ranks_per_node=2 does not divide it
  write_text(path, text.substr(0, line3) + record.dump() + "\n" + text.substr(line4));

  // The strict reader fails with the line and the pointer into the config...
  EXPECT_EQ(input_error_of([&] { read_results(path); }),
            path.string() + ":3: /config/placement/ranks_per_node: must divide world=3, got 2");
  // ...the viewer's scan reports that line and keeps the other trials.
  const ResultsScan scan = scan_results(path);
  const std::string problem = path.string() + ":3: /config/placement/ranks_per_node: must divide world=3, got 2";
  EXPECT_EQ(scan.problems, std::vector<std::string>{problem});
  EXPECT_EQ(scan.skipped, 1);
  ASSERT_EQ(scan.file.trials.size(), 2u);
  EXPECT_EQ(scan.file.trials[0].id, "a");
  EXPECT_EQ(scan.file.trials[1].id, "c");
}

TEST_F(ResultsFileTest, MalformedLastLineWithNewlineIsAnError) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  // Ending in '\n', the line was written whole: not a crash, so not forgiven.
  write_text(path, text + "{\"kind\":\"trial\"\n");
  const std::string message = input_error_of([&] { read_results(path); });
  EXPECT_EQ(message.rfind(path.string() + ":5:16: not valid JSON: ", 0), 0u) << message;
}

TEST_F(ResultsFileTest, BlankLinesAreSkipped) {
  const fs::path path = temp_path(".jsonl");
  const std::string text = write_three_trials(path);
  write_text(path, text + "\n  \n");
  EXPECT_EQ(read_results(path).trials.size(), 3u);
}

TEST_F(ResultsFileTest, EmptyOrHeaderlessFilesAreErrors) {
  const fs::path path = temp_path(".jsonl");
  write_text(path, "");
  EXPECT_EQ(input_error_of([&] { read_results(path); }),
            path.string() + ": empty results file (expected a header line)");
  EXPECT_EQ(input_error_of([&] { ResultsWriter::open_append(path); }),
            path.string() + ": empty results file (expected a header line)");

  write_text(path, "{\"schema\":\"memfront.res");
  EXPECT_NE(input_error_of([&] { read_results(path); })
                .find(path.string() + ":1: truncated header line"),
            std::string::npos);

  write_text(path, to_json(sample_record("a")).dump() + "\n");
  EXPECT_EQ(input_error_of([&] { read_results(path); }),
            path.string() + ":1: /schema: missing (expected a string)");

  const fs::path missing = temp_path(".absent");
  EXPECT_NE(input_error_of([&] { read_results(missing); }).find(missing.string() + ": cannot read"),
            std::string::npos);
}

TEST_F(ResultsFileTest, WrongSchemaVersionFileIsRejected) {
  const fs::path path = temp_path(".jsonl");
  json header = to_json(sample_header());
  header["schema"] = "memfront.results/2";
  write_text(path, header.dump() + "\n");
  const std::string expected = path.string() +
                               ":1: /schema: unsupported schema 'memfront.results/2', "
                               "this memfront reads memfront.results/1";
  EXPECT_EQ(input_error_of([&] { read_results(path); }), expected);
  EXPECT_EQ(input_error_of([&] { ResultsWriter::open_append(path); }), expected);
}

TEST_F(ResultsFileTest, RecordFileRoundTrip) {
  const fs::path path = temp_path(".json");
  const TrialRecord record = sample_record("0123456789abcdef");
  write_record_file(path, record);
  expect_same_record(read_record_file(path), record);
  // Replacing an existing record file leaves no temporary file behind.
  write_record_file(path, sample_record("fedcba9876543210"));
  EXPECT_EQ(read_record_file(path).id, "fedcba9876543210");
  EXPECT_FALSE(fs::exists(path.string() + ".tmp." + std::to_string(::getpid())));
}

TEST_F(ResultsFileTest, RecordFileErrorsNameTheFile) {
  const fs::path path = temp_path(".json");
  write_text(path, "{\"kind\": \"trial\",");
  const std::string syntax = input_error_of([&] { read_record_file(path); });
  EXPECT_EQ(syntax.rfind(path.string() + ":1:18: not valid JSON: ", 0), 0u) << syntax;

  json record = to_json(sample_record("0123456789abcdef"));
  record["metrics"]["tokens_per_s"] = "many";
  write_text(path, record.dump(2));
  EXPECT_EQ(input_error_of([&] { read_record_file(path); }),
            path.string() + ": /metrics/tokens_per_s: expected a number, got string \"many\"");
}

// ---------------------------------------------------------------------------
// Files kept in the repository

TEST(Results, RecordsReadAndWrittenAgainKeepTheirBytes) {
  // Records hold typed structs; the file's text must not change on the way
  // through them (the example's configs are normalized, as memfront writes them).
  // Exceptions: the example's configs predate train.eval_sequences, and
  // their eval_batches (4 micro-batches) read as the sequences evaluated;
  // and placement.link_bandwidth_gigabytes_per_s.
  const std::string text = read_text(kResultsData / "example_v1.jsonl");
  const ResultsFile file = read_results(kResultsData / "example_v1.jsonl");
  std::string written = to_json(file.header).dump() + "\n";
  for (const TrialRecord& record : file.trials) written += to_json(record).dump() + "\n";
  std::string expected = text;
  size_t at = 0;
  for (const TrialRecord& record : file.trials) {
    EXPECT_EQ(record.config.train.eval_sequences, 4 * record.config.batch.micro);
    const std::string old_key = "\"eval_batches\":4";
    at = expected.find(old_key, at);
    ASSERT_NE(at, std::string::npos);
    expected.replace(at, old_key.size(), "\"eval_sequences\":" + std::to_string(record.config.train.eval_sequences));
  }
  // And they predate the link bandwidth's unambiguous key (same value).
  for (size_t old = expected.find("\"link_bandwidth_gbps\""); old != std::string::npos;
       old = expected.find("\"link_bandwidth_gbps\"", old)) {
    expected.replace(old, std::string("\"link_bandwidth_gbps\"").size(), "\"link_bandwidth_gigabytes_per_s\"");
  }
  EXPECT_EQ(written, expected);
}

TEST(Results, ReadsTheVersion1Example) {
  // Written by hand from results/SCHEMA.md: the format is a contract, so a
  // file of this version must keep reading the same.
  const ResultsFile file = read_results(kResultsData / "example_v1.jsonl");
  EXPECT_EQ(file.header.study, "example");
  EXPECT_EQ(file.header.machine.cores, 16);
  ASSERT_EQ(file.trials.size(), 2u);

  const TrialRecord& ok = file.trials[0];
  EXPECT_EQ(ok.id, "3f2a9c1e5b7d0a44");
  EXPECT_EQ(ok.status, TrialStatus::ok);
  EXPECT_EQ(ok.config.shard.strategy, ShardStrategy::ddp);
  ASSERT_TRUE(ok.metrics);
  ASSERT_EQ(ok.metrics->ranks.size(), 2u);
  EXPECT_EQ(ok.metrics->ranks[1].peak_total, 7540736u);
  EXPECT_EQ(ok.metrics->peak_max[static_cast<int>(MemCategory::optimizer)], 1764352u);
  EXPECT_EQ(ok.metrics->step_time_s.median, 0.0125);
  EXPECT_EQ(ok.metrics->step_time_s.count, 6);
  EXPECT_EQ(ok.metrics->phase_s.at("eval"), 0.0102);
  EXPECT_EQ(ok.metrics->bytes_method, "counted");
  EXPECT_EQ(ok.metrics->loss_curve.size(), 8u);
  EXPECT_EQ(ok.metrics->loss_floor, 2.8);
  EXPECT_FALSE(ok.metrics->loss_delta);
  EXPECT_EQ(ok.trace, "traces/3f2a9c1e5b7d0a44.json");

  const TrialRecord& oom = file.trials[1];
  EXPECT_EQ(oom.status, TrialStatus::oom);
  EXPECT_FALSE(oom.metrics);
  EXPECT_NE(oom.error.find("capacity"), std::string::npos);
}

// Resolves {"$ref": "#/$defs/x"} inside the schema document.
const json& resolve(const json& schema, const json& node) {
  if (!node.contains("$ref")) return node;
  const std::string ref = node["$ref"].get<std::string>();
  return schema.at(json::json_pointer(ref.substr(1)));
}

// Walks a line that to_json wrote beside the schema: every object the schema
// describes must list exactly the keys the code writes as "required".
void expect_required_keys_match(const json& schema, const json& node, const json& value,
                                const std::string& pointer) {
  const json* described = &resolve(schema, node);
  if (described->contains("anyOf")) {
    // The nullable members: {"anyOf": [{"type": "null"}, ...]}.
    if (value.is_null()) return;
    for (const json& alternative : (*described)["anyOf"]) {
      if (resolve(schema, alternative).value("type", "") != "null") {
        described = &resolve(schema, alternative);
      }
    }
  }
  if (value.is_object()) {
    // Every required member is written, and every member written is one the
    // schema describes (required, or optional like ranks[i].gpu).
    if (described->contains("required")) {
      for (const std::string& key : (*described)["required"].get<std::set<std::string>>()) {
        EXPECT_TRUE(value.contains(key)) << "at " << pointer << ": required member " << key << " not written";
      }
      for (const auto& item : value.items()) {
        EXPECT_TRUE(described->contains("properties") && (*described)["properties"].contains(item.key()))
            << "at " << pointer << ": member " << item.key() << " written but not in the schema";
      }
    }
    for (const auto& item : value.items()) {
      const std::string child = pointer + "/" + item.key();
      if (described->contains("properties") && (*described)["properties"].contains(item.key())) {
        expect_required_keys_match(schema, (*described)["properties"][item.key()], item.value(),
                                   child);
      } else if (described->contains("additionalProperties")) {
        expect_required_keys_match(schema, (*described)["additionalProperties"], item.value(),
                                   child);
      }
    }
  } else if (value.is_array() && described->contains("items")) {
    for (size_t i = 0; i < value.size(); ++i) {
      expect_required_keys_match(schema, (*described)["items"], value[i],
                                 pointer + "/" + std::to_string(i));
    }
  }
}

TEST(Results, SchemaFileMatchesWhatIsWritten) {
  const std::string text = read_text(kSourceRoot / "results" / "schema.json");
  ASSERT_FALSE(text.empty()) << "results/schema.json not found from " << MEMFRONT_TEST_DATA;
  ASSERT_TRUE(json::accept(text)) << "results/schema.json is not valid JSON";
  const json schema = json::parse(text);
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(schema["oneOf"], json::parse(R"([{"$ref": "#/$defs/header"},
                                             {"$ref": "#/$defs/trial"},
                                             {"$ref": "#/$defs/revision"}])"));
  EXPECT_EQ(schema["$defs"]["header"]["properties"]["schema"]["const"], kResultsSchema);

  expect_required_keys_match(schema, schema["$defs"]["header"], to_json(sample_header()), "");
  expect_required_keys_match(schema, schema["$defs"]["trial"],
                             to_json(sample_record("0123456789abcdef")), "");
  expect_required_keys_match(schema, schema["$defs"]["revision"],
                             to_json(StudyRevision{2, "2026-01-01T00:00:00Z", {{"study", "s"}}, {"/steps: 3 -> 4"}}), "");
  // The category names in the schema are the arena's.
  std::set<std::string> categories;
  for (MemCategory category : kAllMemCategories) categories.insert(std::string(to_string(category)));
  categories.insert("total");
  EXPECT_EQ(schema["$defs"]["peak_bytes"]["required"].get<std::set<std::string>>(), categories);
}

TEST(Results, TimingOfTheProtocolRoundTripsAndMatchesTheSchema) {
  TrialRecord record = sample_record("0123456789abcdef");
  RankTiming rank;
  rank.cpu_s = 0.0123;
  rank.run_delay_s = 0.0004;
  rank.involuntary_switches = 2;
  rank.affinity_cpus = 1;
  rank.bound = true;
  for (RankMetrics& r : record.metrics->ranks) r.timing = rank;
  TimingEvidence evidence;
  evidence.cores = 8;
  evidence.ranks_on_machine = static_cast<int>(record.metrics->ranks.size());
  evidence.ranks.assign(record.metrics->ranks.size(), rank);
  evidence.step_median_s = 0.0125;
  evidence.step_p10_s = 0.012;
  evidence.step_p90_s = 0.013;
  record.metrics->timing = assess_timing(evidence);

  const TrialRecord back = record_from_json(to_json(record), "r");
  ASSERT_TRUE(back.metrics && back.metrics->timing);
  EXPECT_EQ(*back.metrics->timing, *record.metrics->timing);
  EXPECT_EQ(back.metrics->ranks[0].timing, rank);

  const json schema = json::parse(read_text(kSourceRoot / "results" / "schema.json"));
  expect_required_keys_match(schema, schema["$defs"]["trial"], to_json(record), "");
}

}  // namespace
}  // namespace memfront
