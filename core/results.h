#pragma once
// Results records and JSONL I/O (DESIGN.md, "Results file").
//
// A results file is JSON Lines: line 1 is the header (schema version, study,
// machine, memfront version, time), then one line per trial. Writers append one
// complete line at a time and flush it to disk, so a crash can at worst leave a
// truncated last line; readers accept that (and report it) and reject anything
// else malformed with the line number and the field. The schema is documented
// in results/SCHEMA.md with a JSON Schema beside it (results/schema.json).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arena.h"
#include "core/config.h"
#include "core/jsonl.h"
#include "core/prediction.h"
#include "core/timing.h"

namespace memfront {

inline constexpr std::string_view kResultsSchema = "memfront.results/1";

enum class TrialStatus { ok, failed, timeout, oom, pruned, invalid, killed };
inline constexpr TrialStatus kAllTrialStatuses[] = {TrialStatus::ok,     TrialStatus::failed, TrialStatus::timeout,
                                                    TrialStatus::oom,    TrialStatus::pruned, TrialStatus::invalid,
                                                    TrialStatus::killed};
// The one name table (core/results.cpp): what results files and every listing spell.
std::string_view to_string(TrialStatus status);
std::optional<TrialStatus> parse_trial_status(std::string_view name);

struct MachineInfo {
  std::string host;
  std::string cpu;          // model name
  int cores = 0;            // online logical CPUs
  uint64_t memory_bytes = 0;
  std::string gpu;          // empty when none
  std::string driver;       // GPU driver version, empty when none
  std::string cuda;         // CUDA runtime version, empty when not built with CUDA
  std::string mpi;          // MPI library version, empty when not built with MPI
  std::string nccl;         // NCCL version, empty when not built with NCCL
  std::optional<std::string> blas;  // OpenBLAS's build and the kernels it chose for this CPU; none when not found (or in older files)
};

// Fills what this process can see of the machine it runs on.
MachineInfo detect_machine();
// Its online logical CPUs (MachineInfo::cores), without the rest of detect_machine.
int online_cores();

// Now, as the results files write times: ISO 8601 UTC, e.g. 2026-11-23T02:10:00Z.
std::string utc_now();

struct ResultsHeader {
  std::string schema = std::string(kResultsSchema);
  std::string study;             // study name
  MachineInfo machine;
  std::string memfront_version;
  std::string created;           // ISO 8601 UTC, e.g. 2026-11-23T02:10:00Z
  nlohmann::json study_spec;     // the study file's JSON (objectives, space...), null when none
};

// A study continued under a changed study file (`memfront sweep --resume
// --revise`): a line of its own after the trials run under the spec before.
// The header's spec is revision 1; revision lines number on from 2.
struct StudyRevision {
  int number = 2;
  std::string created;               // ISO 8601 UTC
  nlohmann::json study_spec;         // the study file's JSON from here on
  std::vector<std::string> changes;  // from the spec before, as study_differences lists them
};

// Median and spread of a sample (seconds for times).
struct Spread {
  double median = 0, p10 = 0, p90 = 0, min = 0, max = 0;
  int count = 0;
};
// Empty sample -> all zero, count 0; a non-finite sample -> std::invalid_argument.
Spread spread_of(std::vector<double> samples);

// What one rank measured.
struct RankMetrics {
  int rank = 0;
  BytesByCategory peak{};     // arena peak per category
  uint64_t peak_total = 0;    // arena peak of the total (not the sum of category peaks)
  uint64_t rss_peak_bytes = 0;  // process resident high-water mark (cross-check)
  // CPU backend: the most host memory the arena's pool held at once, in use and
  // kept for reuse (core/arena.h HostMemory). Absent on the CUDA backend, whose
  // pool reports itself under `gpu`.
  std::optional<uint64_t> pool_reserved_high_bytes;
  uint64_t bytes_intra_node = 0;  // bytes this rank sent per step, by link class
  uint64_t bytes_inter_node = 0;
  double step_time_median_s = 0;  // this rank's own median step time
  // What the timed steps cost this rank beside wall time (core/timing.h);
  // absent in records written before the timing protocol.
  std::optional<RankTiming> timing;
  // CUDA backend only (null on the CPU): the device-memory cross-checks of the
  // arena (memory pool and driver) and the CUPTI probe's summary; its fields
  // are listed in results/SCHEMA.md. Absent from the JSON when null.
  nlohmann::json gpu;
};

struct TrialMetrics {
  std::vector<RankMetrics> ranks;
  BytesByCategory peak_max{};   // per category, max over ranks
  uint64_t peak_total_max = 0;  // max over ranks of peak_total
  BytesByCategory peak_min{};   // per category, min over ranks: the spread is max - min
  uint64_t peak_total_min = 0;
  Spread step_time_s;           // timed steps only (rank 0's; the ranks step together)
  // Whether step_time_s measures the configuration or the machine's load
  // (core/timing.h); absent in records written before the timing protocol.
  std::optional<TimingQuality> timing;
  std::map<std::string, double> phase_s;  // median seconds per step by phase (forward, backward, ...)
  // The step split by what it waits for (medians per step, rank 0): compute
  // (forward, backward, recompute, optimizer, quantize, topk), communication,
  // and the part of communication that compute does not hide (all of it while
  // memfront's collectives are synchronous).
  double compute_s = 0;
  double comm_s = 0;
  double exposed_comm_s = 0;
  double tokens_per_s = 0;
  double flops_per_step = 0;    // counted by the kernels that ran
  double gflops = 0;            // flops_per_step / median step time / 1e9
  // Bytes one step sends, all ranks together, by link class; "counted" where
  // memfront sends them, "formula" where a library collective's algorithm gives them.
  uint64_t bytes_intra_node = 0;
  uint64_t bytes_inter_node = 0;
  std::string bytes_method = "counted";
  bool emulated = false;        // inter-node links emulated on one host
  std::vector<double> loss_curve;  // training loss of every step, warmup included
  double final_loss = 0;           // held-out loss after the last step
  std::optional<double> loss_floor;  // entropy rate of the data, when known
  std::optional<double> loss_delta;  // final_loss - the study reference's, set by the tuner
};

struct TrialRecord {
  std::string id;              // config_id() of the normalized config
  // Parsed (validated and normalized) once, when the record is read; written
  // as to_json(config). A record whose config no longer parses (a file from a
  // memfront whose config rules differed) is a malformed record like any other:
  // read_results fails with "<file>:<line>: /config/<knob>: <what was expected>",
  // scan_results reports that line as a problem and skips the record.
  Config config;
  TrialStatus status = TrialStatus::ok;
  std::string error;           // one line; empty when ok
  std::optional<TrialMetrics> metrics;  // absent when nothing was measured
  std::optional<Prediction> prediction;  // the cost model's, beside the measurement; none until the tuner
  std::string trace;           // path of the trace file, relative to the results file; empty if none
  nlohmann::json provenance;   // object: memfront version, host, command line, start time, ...
};

nlohmann::json to_json(const ResultsHeader& header);
// One rank's part of metrics.ranks, on its own (ranks send theirs to rank 0).
nlohmann::json rank_metrics_to_json(const RankMetrics& rank);
RankMetrics rank_metrics_from_json(const nlohmann::json& json, std::string_view where);
nlohmann::json to_json(const TrialRecord& record);
nlohmann::json to_json(const StudyRevision& revision);
// Throw InputError "<where>: <json pointer>: <what was expected>".
ResultsHeader header_from_json(const nlohmann::json& json, std::string_view where);
TrialRecord record_from_json(const nlohmann::json& json, std::string_view where);
StudyRevision revision_from_json(const nlohmann::json& json, std::string_view where);

// Appends to a results file, by the JSON Lines rules of core/jsonl.h: each
// append writes one complete line with a single write() and fsyncs it.
class ResultsWriter {
 public:
  // New file with the header line; InputError if the file exists.
  static ResultsWriter create(const std::filesystem::path& path, const ResultsHeader& header);
  // Existing results file: checks every line; a truncated last line (a crash
  // mid-write) is cut off so the file stays valid, and repaired_tail() says so.
  static ResultsWriter open_append(const std::filesystem::path& path);

  // std::invalid_argument, before writing anything, for a record that would
  // not read back (e.g. provenance that is not an object).
  void append(const TrialRecord& record);
  void append(const StudyRevision& revision);
  bool repaired_tail() const { return appender_.repaired().has_value(); }
  // What open_append repaired, as one line naming the file and line.
  const std::optional<std::string>& repair() const { return appender_.repaired(); }
  const std::filesystem::path& path() const { return appender_.path(); }

 private:
  explicit ResultsWriter(JsonlAppender appender);
  JsonlAppender appender_;
};

struct ResultsFile {
  ResultsHeader header;
  std::vector<TrialRecord> trials;
  std::vector<StudyRevision> revisions;  // in file order
  // Set when the last line was cut short (a crash mid-write): the message says
  // which line and how many bytes were ignored.
  std::optional<std::string> truncated_tail;

  // The study the file goes on with: its last revision's spec, else the header's.
  const nlohmann::json& study_spec() const {
    return revisions.empty() ? header.study_spec : revisions.back().study_spec;
  }
  int study_revision() const { return revisions.empty() ? 1 : revisions.back().number; }
};

// Throws InputError "<file>:<line>: <json pointer>: <what was expected>" for any
// malformed line other than a truncated last one, and for an empty file or a
// header of another schema version.
ResultsFile read_results(const std::filesystem::path& path);

// read_results for a file too large to hold: the file is read a line at a
// time and each trial handed to `on_record` with its line (for
// read_record_at) instead of being kept; the ResultsFile returned holds no
// trials. The same rules and errors as read_results, which is built on it.
using RecordSink = std::function<void(TrialRecord&& record, const JsonlLine& line)>;
ResultsFile read_results(const std::filesystem::path& path, const RecordSink& on_record);

// The header, revisions and torn tail of a results file, read a line at a
// time with its trial lines left unparsed (only their "kind" is looked at):
// which study the file goes on with, before a pass over its trials.
ResultsFile read_results_outline(const std::filesystem::path& path);

// The trial on the line that begins at byte `offset` of a results file, line
// `number` (a JsonlLine read_results handed out); InputError as read_results'.
TrialRecord read_record_at(const std::filesystem::path& path, uint64_t offset, int number);

// What a tolerant reader (the viewer) could make of a results file. Nothing in
// the file's content makes it throw: each problem is one line
// "<file>[:<line>]: [<json pointer>: ]<what>", and the readable trials are kept.
struct ResultsScan {
  ResultsFile file;  // truncated_tail set when the last line is incomplete
  std::vector<std::string> problems;
  int skipped = 0;               // malformed lines left out
  uint64_t bytes_consumed = 0;   // file position after the last complete line read
};

// Reads the trials from byte `offset` on (the bytes_consumed of an earlier
// scan, to pick up lines appended since) given the header read then; with no
// header, line 1 is read as the header. A last line without its '\n' that is
// not JSON is being written (or was cut short): it is left unconsumed, so a
// later scan from bytes_consumed reads it once complete.
ResultsScan scan_results(const std::filesystem::path& path, uint64_t offset = 0,
                         std::optional<ResultsHeader> header = std::nullopt);

// A single trial record as one JSON document (memfront-trial --out), written
// with replace_file_atomically (core/jsonl.h).
void write_record_file(const std::filesystem::path& path, const TrialRecord& record,
                       FileSync sync = FileSync::durable);
TrialRecord read_record_file(const std::filesystem::path& path);

}  // namespace memfront
