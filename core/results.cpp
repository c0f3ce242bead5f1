// Results records and JSONL I/O. The layout written and read here is the one
// documented in results/SCHEMA.md; keep the two (and results/schema.json) in step.
#include "core/results.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <variant>

#include "core/error.h"
#include "core/json_file.h"
#include "core/jsonl.h"
#include "core/strict_json.h"

namespace memfront {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Trial status

namespace {

constexpr std::array<std::pair<TrialStatus, std::string_view>, 7> kTrialStatusNames = {{
    {TrialStatus::ok, "ok"},
    {TrialStatus::failed, "failed"},
    {TrialStatus::timeout, "timeout"},
    {TrialStatus::oom, "oom"},
    {TrialStatus::pruned, "pruned"},
    {TrialStatus::invalid, "invalid"},
    {TrialStatus::killed, "killed"},
}};

}  // namespace

std::string_view to_string(TrialStatus status) {
  for (const auto& [value, name] : kTrialStatusNames) {
    if (value == status) return name;
  }
  throw std::invalid_argument("TrialStatus value " + std::to_string(static_cast<int>(status)) +
                              " has no name");
}

std::optional<TrialStatus> parse_trial_status(std::string_view name) {
  for (const auto& [value, known] : kTrialStatusNames) {
    if (known == name) return value;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Machine

namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

// The value of the first "key: value" line of a /proc file with this key;
// empty when the file or the key is absent (e.g. no "model name" on ARM).
std::string proc_field(const char* file, std::string_view key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(std::string_view(line).substr(0, colon)) == key) {
      return std::string(trim(std::string_view(line).substr(colon + 1)));
    }
  }
  return {};
}

}  // namespace

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

namespace {

// OpenBLAS built with DYNAMIC_ARCH (Debian's is) picks its GEMM kernels for the
// CPU when it is loaded, and says which: "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
// Zen MAX_THREADS=64 (kernels: Zen)". The tuner, which writes headers, does not
// link the BLAS, so it loads the library the kernels link (its Debian soname,
// also what scripts/gpu-prepare.sh stages) to ask, and keeps it loaded:
// OpenBLAS does not support being unloaded.
std::optional<std::string> detect_blas() {
  void* library = dlopen("libopenblas.so.0", RTLD_LAZY | RTLD_LOCAL);
  if (!library) return std::nullopt;
  using Text = char* (*)();
  const auto config = reinterpret_cast<Text>(dlsym(library, "openblas_get_config"));
  const auto core = reinterpret_cast<Text>(dlsym(library, "openblas_get_corename"));
  std::string blas = config ? config() : "OpenBLAS";
  if (core) blas += std::string(" (kernels: ") + core() + ")";
  return blas;
}

}  // namespace

int online_cores() { return static_cast<int>(std::max(0L, sysconf(_SC_NPROCESSORS_ONLN))); }

MachineInfo detect_machine() {
  MachineInfo machine;
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) == 0) machine.host = host;
  machine.cpu = proc_field("/proc/cpuinfo", "model name");
  machine.cores = online_cores();
  // "MemTotal:  131891792 kB": the kernel's kB are KiB.
  const std::string mem_total = proc_field("/proc/meminfo", "MemTotal");
  machine.memory_bytes = std::strtoull(mem_total.c_str(), nullptr, 10) * 1024;
  // The NVIDIA driver describes itself and each GPU under /proc, so the GPU is
  // named without linking CUDA (the tuner, which writes headers, never does).
  std::error_code error;
  for (const auto& gpu : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", error)) {
    const std::string model = proc_field((gpu.path() / "information").c_str(), "Model");
    if (model.empty()) continue;
    machine.gpu += (machine.gpu.empty() ? "" : ", ") + model;
  }
  // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 ...": the version is the
  // first word with a dot after "Module".
  const std::string driver = proc_field("/proc/driver/nvidia/version", "NVRM version");
  if (const auto module = driver.find("Module"); module != std::string::npos) {
    std::istringstream words(driver.substr(module + 6));
    std::string word;
    while (words >> word) {
      if (word.find('.') == std::string::npos) continue;
      machine.driver = word;
      break;
    }
  }
#ifdef MEMFRONT_CUDA_VERSION
  machine.cuda = MEMFRONT_CUDA_VERSION;  // the toolkit memfront was built with
  machine.nccl = MEMFRONT_NCCL_VERSION;
#endif
  machine.blas = detect_blas();
  return machine;
}

// ---------------------------------------------------------------------------
// Spread

Spread spread_of(std::vector<double> samples) {
  Spread spread;
  if (samples.empty()) return spread;
  for (size_t i = 0; i < samples.size(); ++i) {
    // A NaN would break the sort's ordering and every percentile after it.
    if (!std::isfinite(samples[i])) {
      throw std::invalid_argument("spread_of: sample " + std::to_string(i) +
                                  " is not a finite number");
    }
  }
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  // numpy's default ("linear") percentile: the value at position q * (n - 1)
  // of the sorted sample, interpolated between the two closest ranks.
  const auto percentile = [&](double q) {
    const double position = q * static_cast<double>(n - 1);
    const auto below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, n - 1);
    const double fraction = position - static_cast<double>(below);
    return samples[below] + fraction * (samples[above] - samples[below]);
  };
  spread.median = percentile(0.5);
  spread.p10 = percentile(0.1);
  spread.p90 = percentile(0.9);
  spread.min = samples.front();
  spread.max = samples.back();
  spread.count = static_cast<int>(n);
  return spread;
}

// ---------------------------------------------------------------------------
// Records to JSON

namespace {

// JSON has no NaN or infinity, but a diverged loss is a real result, so
// non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".
json real_to_json(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return value;
}

json optional_real_to_json(const std::optional<double>& value) {
  return value ? real_to_json(*value) : json(nullptr);
}

json reals_to_json(const std::vector<double>& values) {
  json array = json::array();
  for (double value : values) array.push_back(real_to_json(value));
  return array;
}

// {"params": .., ..., "workspace": .., "total": ..}
json peak_bytes_to_json(const BytesByCategory& bytes, uint64_t total) {
  json object = json::object();
  for (MemCategory category : kAllMemCategories) {
    object[std::string(to_string(category))] = bytes[static_cast<int>(category)];
  }
  object["total"] = total;
  return object;
}

json to_json(const MachineInfo& machine) {
  json j = {{"host", machine.host},     {"cpu", machine.cpu},   {"cores", machine.cores},
            {"memory_bytes", machine.memory_bytes},                 {"gpu", machine.gpu},
            {"driver", machine.driver}, {"cuda", machine.cuda}, {"mpi", machine.mpi},
            {"nccl", machine.nccl}};
  if (machine.blas) j["blas"] = *machine.blas;  // absent in files from before it, and read back so
  return j;
}

json to_json(const Spread& spread) {
  return {{"median", real_to_json(spread.median)}, {"p10", real_to_json(spread.p10)},
          {"p90", real_to_json(spread.p90)},       {"min", real_to_json(spread.min)},
          {"max", real_to_json(spread.max)},       {"count", spread.count}};
}

json to_json(const RankMetrics& rank) {
  json j = {{"rank", rank.rank},
            {"peak_bytes", peak_bytes_to_json(rank.peak, rank.peak_total)},
            {"rss_peak_bytes", rank.rss_peak_bytes},
            {"comm", {{"bytes_intra_node", rank.bytes_intra_node}, {"bytes_inter_node", rank.bytes_inter_node}}},
            {"step_time_median_s", real_to_json(rank.step_time_median_s)}};
  if (rank.pool_reserved_high_bytes) j["pool_reserved_high_bytes"] = *rank.pool_reserved_high_bytes;
  if (!rank.gpu.is_null()) j["gpu"] = rank.gpu;
  if (rank.timing) j["timing"] = to_json(*rank.timing);
  return j;
}

json to_json(const TrialMetrics& metrics) {
  json ranks = json::array();
  for (const RankMetrics& rank : metrics.ranks) ranks.push_back(to_json(rank));
  json phases = json::object();
  for (const auto& [phase, seconds] : metrics.phase_s) phases[phase] = real_to_json(seconds);
  json j = {
      {"ranks", std::move(ranks)},
      {"peak_bytes", peak_bytes_to_json(metrics.peak_max, metrics.peak_total_max)},
      {"peak_min_bytes", peak_bytes_to_json(metrics.peak_min, metrics.peak_total_min)},
      {"step_time_s", to_json(metrics.step_time_s)},
      {"phase_s", std::move(phases)},
      {"breakdown_s",
       {{"compute", real_to_json(metrics.compute_s)},
        {"comm", real_to_json(metrics.comm_s)},
        {"exposed_comm", real_to_json(metrics.exposed_comm_s)}}},
      {"tokens_per_s", real_to_json(metrics.tokens_per_s)},
      {"flops_per_step", real_to_json(metrics.flops_per_step)},
      {"gflops", real_to_json(metrics.gflops)},
      {"comm",
       {{"bytes_intra_node", metrics.bytes_intra_node},
        {"bytes_inter_node", metrics.bytes_inter_node},
        {"method", metrics.bytes_method},
        {"emulated", metrics.emulated}}},
      {"loss",
       {{"curve", reals_to_json(metrics.loss_curve)},
        {"final", real_to_json(metrics.final_loss)},
        {"floor", optional_real_to_json(metrics.loss_floor)},
        {"delta", optional_real_to_json(metrics.loss_delta)}}},
  };
  if (metrics.timing) j["timing"] = to_json(*metrics.timing);
  return j;
}

}  // namespace

json to_json(const ResultsHeader& header) {
  return {{"schema", header.schema},
          {"kind", "header"},
          {"study", header.study},
          {"machine", to_json(header.machine)},
          {"memfront_version", header.memfront_version},
          {"created", header.created},
          {"study_spec", header.study_spec}};
}

json to_json(const TrialRecord& record) {
  return {{"kind", "trial"},
          {"id", record.id},
          {"config", to_json(record.config)},
          {"status", to_string(record.status)},
          {"error", record.error},
          {"metrics", record.metrics ? to_json(*record.metrics) : json(nullptr)},
          {"prediction", record.prediction ? to_json(*record.prediction) : json(nullptr)},
          {"trace", record.trace},
          {"provenance", record.provenance}};
}

json to_json(const StudyRevision& revision) {
  return {{"kind", "revision"},
          {"revision", revision.number},
          {"created", revision.created},
          {"study_spec", revision.study_spec},
          {"changes", revision.changes}};
}

// ---------------------------------------------------------------------------
// Records from JSON

namespace {

constexpr std::string_view kBytesMethods[] = {"counted", "formula"};

MachineInfo machine_from_json(const JsonField& object) {
  MachineInfo machine;
  machine.host = object.string_at("host");
  machine.cpu = object.string_at("cpu");
  machine.cores = object.non_negative_int_at("cores");
  machine.memory_bytes = object.unsigned_at("memory_bytes");
  machine.gpu = object.string_at("gpu");
  machine.driver = object.string_at("driver");
  machine.cuda = object.string_at("cuda");
  machine.mpi = object.string_at("mpi");
  machine.nccl = object.string_at("nccl");
  if (object.has("blas")) machine.blas = object.string_at("blas");  // absent in files from before it
  return machine;
}

Spread spread_from_json(const JsonField& object) {
  Spread spread;
  spread.median = object.real_at("median");
  spread.p10 = object.real_at("p10");
  spread.p90 = object.real_at("p90");
  spread.min = object.real_at("min");
  spread.max = object.real_at("max");
  spread.count = object.non_negative_int_at("count");
  return spread;
}

// Every category and "total" must be present; other keys are ignored.
void peak_bytes_from_json(const JsonField& object, BytesByCategory& bytes, uint64_t& total) {
  for (MemCategory category : kAllMemCategories) {
    bytes[static_cast<int>(category)] = object.unsigned_at(to_string(category));
  }
  total = object.unsigned_at("total");
}

RankMetrics rank_from_json(const JsonField& object) {
  RankMetrics rank;
  rank.rank = object.non_negative_int_at("rank");
  peak_bytes_from_json(object.object_at("peak_bytes"), rank.peak, rank.peak_total);
  rank.rss_peak_bytes = object.unsigned_at("rss_peak_bytes");
  const JsonField comm = object.object_at("comm");
  rank.bytes_intra_node = comm.unsigned_at("bytes_intra_node");
  rank.bytes_inter_node = comm.unsigned_at("bytes_inter_node");
  rank.step_time_median_s = object.real_at("step_time_median_s");
  if (object.has("pool_reserved_high_bytes")) {
    rank.pool_reserved_high_bytes = object.unsigned_at("pool_reserved_high_bytes");
  }
  if (object.has("gpu")) rank.gpu = object.optional_object_at("gpu");
  if (object.has("timing")) {
    rank.timing = rank_timing_from_json(object.member("timing", "an object"));
  }
  return rank;
}

TrialMetrics metrics_from_json(const JsonField& object) {
  TrialMetrics metrics;
  const JsonField ranks = object.array_at("ranks");
  for (size_t i = 0; i < ranks.value().size(); ++i) {
    const JsonField rank = ranks.element(i);
    rank.expect_object();
    metrics.ranks.push_back(rank_from_json(rank));
  }
  peak_bytes_from_json(object.object_at("peak_bytes"), metrics.peak_max, metrics.peak_total_max);
  peak_bytes_from_json(object.object_at("peak_min_bytes"), metrics.peak_min, metrics.peak_total_min);
  metrics.step_time_s = spread_from_json(object.object_at("step_time_s"));
  const JsonField breakdown = object.object_at("breakdown_s");
  metrics.compute_s = breakdown.real_at("compute");
  metrics.comm_s = breakdown.real_at("comm");
  metrics.exposed_comm_s = breakdown.real_at("exposed_comm");
  const JsonField phases = object.object_at("phase_s");
  for (const auto& phase : phases.value().items()) {
    metrics.phase_s[phase.key()] = phases.real_at(phase.key());
  }
  metrics.tokens_per_s = object.real_at("tokens_per_s");
  metrics.flops_per_step = object.real_at("flops_per_step");
  metrics.gflops = object.real_at("gflops");

  const JsonField comm = object.object_at("comm");
  metrics.bytes_intra_node = comm.unsigned_at("bytes_intra_node");
  metrics.bytes_inter_node = comm.unsigned_at("bytes_inter_node");
  const JsonField method = comm.member("method", "\"counted\" or \"formula\"");
  if (!method.value().is_string() ||
      std::ranges::find(kBytesMethods, method.value().get<std::string>()) ==
          std::end(kBytesMethods)) {
    method.fail_expected("\"counted\" or \"formula\"");
  }
  metrics.bytes_method = method.value().get<std::string>();
  metrics.emulated = comm.bool_at("emulated");

  const JsonField loss = object.object_at("loss");
  const JsonField curve = loss.array_at("curve");
  for (size_t i = 0; i < curve.value().size(); ++i) {
    metrics.loss_curve.push_back(curve.element(i).as_real());
  }
  metrics.final_loss = loss.real_at("final");
  metrics.loss_floor = loss.optional_real_at("floor");
  metrics.loss_delta = loss.optional_real_at("delta");
  if (object.has("timing")) {
    metrics.timing = timing_quality_from_json(object.member("timing", "an object"));
  }
  return metrics;
}

std::string status_choices() {
  std::string choices = "one of ";
  for (const auto& [value, name] : kTrialStatusNames) {
    if (value != kTrialStatusNames.front().first) choices += ", ";
    choices += name;
  }
  return choices;
}

}  // namespace

ResultsHeader header_from_json(const json& document, std::string_view where) {
  const JsonField root(document, where, "");
  root.expect_object();
  ResultsHeader header;
  // The schema first: a file of another version may differ in anything else.
  header.schema = root.string_at("schema");
  if (header.schema != kResultsSchema) {
    root.member("schema", "a string")
        .fail("unsupported schema '" + header.schema + "', this memfront reads " +
              std::string(kResultsSchema));
  }
  root.expect_string_at("kind", "header");
  header.study = root.string_at("study");
  header.machine = machine_from_json(root.object_at("machine"));
  header.memfront_version = root.string_at("memfront_version");
  header.created = root.string_at("created");
  // Optional: files written before it existed have no study_spec.
  if (document.contains("study_spec")) {
    const json& spec = document["study_spec"];
    if (!spec.is_null() && !spec.is_object()) {
      root.member("study_spec", "an object or null").fail_expected("an object or null");
    }
    header.study_spec = spec;
  }
  return header;
}

json rank_metrics_to_json(const RankMetrics& rank) { return to_json(rank); }

RankMetrics rank_metrics_from_json(const json& document, std::string_view where) {
  const JsonField root(document, where, "");
  root.expect_object();
  return rank_from_json(root);
}

TrialRecord record_from_json(const json& document, std::string_view where) {
  const JsonField root(document, where, "");
  root.expect_object();
  root.expect_string_at("kind", "trial");
  TrialRecord record;
  const JsonField id = root.member("id", "a non-empty string (the config id)");
  record.id = id.as_string();
  if (record.id.empty()) id.fail_expected("a non-empty string (the config id)");
  const JsonField config = root.object_at("config");
  std::variant<Config, ConfigViolation> checked = check_config(in_current_spelling(config.value()), where);
  if (const ConfigViolation* violation = std::get_if<ConfigViolation>(&checked)) {
    fail_at(where, violation->pointer_under(config.pointer()), violation->expected);
  }
  record.config = std::move(std::get<Config>(checked));
  const JsonField status = root.member("status", "a string");
  const auto parsed_status = parse_trial_status(status.as_string());
  if (!parsed_status) status.fail_expected(status_choices());
  record.status = *parsed_status;
  record.error = root.string_at("error");
  const JsonField metrics = root.member("metrics", "an object or null");
  if (!metrics.is_null()) record.metrics = metrics_from_json(metrics.expect_object());
  const JsonField prediction = root.member("prediction", "an object or null");
  if (!prediction.is_null()) record.prediction = prediction_from_json(prediction.value(), where, "/prediction");
  record.trace = root.string_at("trace");
  record.provenance = root.object_at("provenance").value();
  return record;
}

StudyRevision revision_from_json(const json& document, std::string_view where) {
  const JsonField root(document, where, "");
  root.expect_object();
  root.expect_string_at("kind", "revision");
  StudyRevision revision;
  const JsonField number = root.member("revision", "an integer from 2");
  revision.number = number.as_non_negative_int();
  if (revision.number < 2) number.fail_expected("an integer from 2 (the header is revision 1)");
  revision.created = root.string_at("created");
  revision.study_spec = root.object_at("study_spec").value();
  const JsonField changes = root.array_at("changes");
  for (size_t i = 0; i < changes.value().size(); ++i) revision.changes.push_back(changes.element(i).as_string());
  return revision;
}

// ---------------------------------------------------------------------------
// Files


namespace {

// A document is about to be written: check it with the reader first, since a
// line the reader rejects would make the whole results file unreadable. The
// fault is the caller's, not the input's, hence invalid_argument.
template <class Reader>
void check_before_writing(const json& document, const std::string& where, Reader reader) {
  try {
    reader(document, where);
  } catch (const InputError& error) {
    throw std::invalid_argument(error.what());
  }
}

std::string dump_line(const json& document) {
  // Invalid UTF-8 (an error message with stray bytes) is replaced rather than
  // losing the record.
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The header of line 1, as its reader finds it.
ResultsHeader header_of_line(const JsonlLine& line, const std::string& file) {
  const std::string where = file + ":" + std::to_string(line.number);
  return header_from_json(parse_json_text(line.text, file, line.number), where);
}

// One line after the header: a trial, or a revision of the study.
std::variant<TrialRecord, StudyRevision> entry_of_line(const JsonlLine& line, const std::string& file) {
  const std::string where = file + ":" + std::to_string(line.number);
  const json document = parse_json_text(line.text, file, line.number);
  const auto kind = document.is_object() ? document.find("kind") : document.end();
  if (kind != document.end() && *kind == "revision") return revision_from_json(document, where);
  return record_from_json(document, where);
}

TrialRecord record_of_line(const JsonlLine& line, const std::string& file) {
  std::variant<TrialRecord, StudyRevision> entry = entry_of_line(line, file);
  if (std::holds_alternative<StudyRevision>(entry)) {
    fail_at(file + ":" + std::to_string(line.number), "/kind", "expected \"trial\", got \"revision\"");
  }
  return std::get<TrialRecord>(std::move(entry));
}

// Whether a line is a revision, found without parsing the whole line: the
// syntax is followed only as far as the top-level "kind" (memfront writes
// keys sorted, so it comes before the metrics). A line that is not JSON is
// left to the pass that parses it.
bool is_revision_line(std::string_view text) {
  struct KindOnly : nlohmann::json_sax<json> {
    int depth = 0;
    bool at_kind = false, revision = false;
    bool value() const { return !at_kind; }  // any value of "kind" but a string ends the search
    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t) override { return value(); }
    bool number_unsigned(number_unsigned_t) override { return value(); }
    bool number_float(number_float_t, const string_t&) override { return value(); }
    bool binary(binary_t&) override { return value(); }
    bool string(string_t& found) override {
      revision = at_kind && found == "revision";
      return value();
    }
    bool start_object(std::size_t) override { return open(); }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_array() override { return close(); }
    bool open() {
      ++depth;
      return value();
    }
    bool close() {
      --depth;
      return true;
    }
    bool key(string_t& name) override {
      at_kind = depth == 1 && name == "kind";
      return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception&) override { return false; }
  } kind;
  nlohmann::json::sax_parse(text, &kind);
  return kind.revision;
}

// The lines of a results file, from its text or from the file a line at a time.
class ResultsLines {
 public:
  virtual ~ResultsLines() = default;
  virtual std::optional<JsonlLine> next() = 0;
  virtual std::optional<JsonlLine> torn_tail() const = 0;  // once next() has given none
};

class TextLines final : public ResultsLines {
 public:
  explicit TextLines(std::string_view text) : split_(split_jsonl(text)) {}
  std::optional<JsonlLine> next() override {
    if (at_ == split_.lines.size()) return std::nullopt;
    return split_.lines[at_++];
  }
  std::optional<JsonlLine> torn_tail() const override { return split_.torn_tail; }

 private:
  JsonlText split_;
  size_t at_ = 0;
};

class FileLines final : public ResultsLines {
 public:
  explicit FileLines(const std::filesystem::path& path) : reader_(path, "results file") {}
  std::optional<JsonlLine> next() override { return reader_.next(); }
  std::optional<JsonlLine> torn_tail() const override { return reader_.torn_tail(); }

 private:
  JsonlReader reader_;
};

// The rules of a results file's lines (results/SCHEMA.md, "Reading rules"): the
// JSON Lines rules (core/jsonl.h), line 1 is the header, blank lines are
// skipped, revisions number on from 2. Without `on_record`, trial lines are
// skipped unparsed.
ResultsFile read_results_lines(ResultsLines& lines, const std::string& file, const RecordSink& on_record) {
  const std::optional<JsonlLine> first = lines.next();
  if (!first) {
    if (lines.torn_tail()) {
      throw InputError(file + ":1: truncated header line (a crash while the file was created); "
                              "no trial was recorded, delete the file to start again");
    }
    throw InputError(file + ": empty results file (expected a header line)");
  }
  if (is_blank_line(first->text)) throw InputError(file + ":1: expected the header line, got an empty line");
  ResultsFile parsed;
  parsed.header = header_of_line(*first, file);
  while (const std::optional<JsonlLine> line = lines.next()) {
    if (is_blank_line(line->text) || (!on_record && !is_revision_line(line->text))) continue;
    std::variant<TrialRecord, StudyRevision> entry = entry_of_line(*line, file);
    if (StudyRevision* revision = std::get_if<StudyRevision>(&entry)) {
      if (revision->number != parsed.study_revision() + 1) {
        fail_at(file + ":" + std::to_string(line->number), "/revision",
                "expected " + std::to_string(parsed.study_revision() + 1) + " (the revision after the last), got " +
                    std::to_string(revision->number));
      }
      parsed.revisions.push_back(std::move(*revision));
    } else if (on_record) {
      on_record(std::get<TrialRecord>(std::move(entry)), *line);
    }
  }
  if (const std::optional<JsonlLine> torn = lines.torn_tail()) {
    parsed.truncated_tail = file + ":" + std::to_string(torn->number) + ": truncated last line ignored (" +
                            std::to_string(torn->text.size()) + " bytes; a crash mid-write)";
  }
  return parsed;
}

// The whole file in memory, its trials kept.
ResultsFile read_all_lines(ResultsLines& lines, const std::string& file) {
  std::vector<TrialRecord> trials;
  ResultsFile parsed =
      read_results_lines(lines, file, [&](TrialRecord&& record, const JsonlLine&) { trials.push_back(std::move(record)); });
  parsed.trials = std::move(trials);
  return parsed;
}

ResultsFile parse_results_text(std::string_view text, const std::string& file) {
  TextLines lines(text);
  return read_all_lines(lines, file);
}

}  // namespace

ResultsWriter::ResultsWriter(JsonlAppender appender) : appender_(std::move(appender)) {}

ResultsWriter ResultsWriter::create(const std::filesystem::path& path,
                                    const ResultsHeader& header) {
  const json document = to_json(header);
  check_before_writing(document, path.string() + ": header to write", header_from_json);
  std::optional<JsonlAppender> appender = JsonlAppender::create_new(path, dump_line(document));
  if (!appender) {
    throw InputError(path.string() + ": results file already exists (open it to append, or choose a new name)");
  }
  return ResultsWriter(std::move(*appender));
}

ResultsWriter ResultsWriter::open_append(const std::filesystem::path& path) {
  // Every line is checked, not only the header: appending to a file that
  // readers reject would only bury the fault deeper.
  return ResultsWriter(JsonlAppender::open(path, false, [&](std::string_view text) {
    parse_results_text(text, path.string());
  }));
}

void ResultsWriter::append(const TrialRecord& record) {
  const json document = to_json(record);
  check_before_writing(document, path().string() + ": record to append", record_from_json);
  appender_.append(dump_line(document));
}

void ResultsWriter::append(const StudyRevision& revision) {
  const json document = to_json(revision);
  check_before_writing(document, path().string() + ": revision to append", revision_from_json);
  appender_.append(dump_line(document));
}

ResultsFile read_results(const std::filesystem::path& path) {
  FileLines lines(path);
  return read_all_lines(lines, path.string());
}

ResultsFile read_results(const std::filesystem::path& path, const RecordSink& on_record) {
  FileLines lines(path);
  return read_results_lines(lines, path.string(), on_record);
}

ResultsFile read_results_outline(const std::filesystem::path& path) {
  FileLines lines(path);
  return read_results_lines(lines, path.string(), nullptr);
}

TrialRecord read_record_at(const std::filesystem::path& path, uint64_t offset, int number) {
  JsonlReader reader(path, "results file", offset, number);
  const std::optional<JsonlLine> line = reader.next();
  if (!line) throw InputError(path.string() + ":" + std::to_string(number) + ": no line there (the file changed)");
  return record_of_line(*line, path.string());
}

ResultsScan scan_results(const std::filesystem::path& path, uint64_t offset,
                         std::optional<ResultsHeader> header) {
  ResultsScan scan;
  scan.bytes_consumed = offset;
  const std::string file = path.string();
  std::string text;
  try {
    text = read_text_file(path, "results file");
  } catch (const InputError& error) {
    scan.problems.push_back(error.what());
    return scan;
  }
  if (offset > text.size()) {
    scan.problems.push_back(file + ": the file is shorter than the " + std::to_string(offset) +
                            " bytes read before (replaced or truncated)");
    return scan;
  }
  if (text.empty()) {
    scan.problems.push_back(file + ": empty results file (expected a header line)");
    return scan;
  }
  // Without a header, line 1 is read as the header and the trials from the
  // line after it (or from `offset`, when that is further on).
  const JsonlText split = split_jsonl(text, header ? offset : 0);
  if (split.torn_tail) {
    scan.file.truncated_tail = file + ":" + std::to_string(split.torn_tail->number) + ": incomplete last line (" +
                               std::to_string(split.torn_tail->text.size()) +
                               " bytes; still being written, or cut short by a crash)";
  }
  auto line = split.lines.begin();
  if (header) {
    scan.file.header = std::move(*header);
  } else {
    if (line == split.lines.end()) return scan;  // the header line is incomplete
    try {
      scan.file.header = header_of_line(*line, file);
    } catch (const std::exception& error) {
      // Nothing after a foreign or broken header can be trusted to be of this schema.
      scan.problems.push_back(error.what());
      return scan;
    }
    scan.bytes_consumed = std::max<uint64_t>(offset, line->next);
    ++line;
    while (line != split.lines.end() && line->begin < offset) ++line;
  }

  // First the complete lines (cheap), then their JSON on every core: parsing
  // is nearly all of the time it takes to open a large file.
  std::vector<JsonlLine> pending;
  for (; line != split.lines.end(); ++line) {
    if (!is_blank_line(line->text)) pending.push_back(*line);
    scan.bytes_consumed = line->next;
  }
  std::vector<std::optional<std::variant<TrialRecord, StudyRevision>>> records(pending.size());
  std::vector<std::string> errors(pending.size());
  const auto parse_lines = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      try {
        records[i] = entry_of_line(pending[i], file);
      } catch (const std::exception& error) {
        errors[i] = error.what();
      }
    }
  };
  const size_t workers = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, pending.size() / 512 + 1);
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) {
    threads.emplace_back(parse_lines, pending.size() * w / workers, pending.size() * (w + 1) / workers);
  }
  parse_lines(0, pending.size() / workers);
  for (std::thread& thread : threads) thread.join();

  scan.file.trials.reserve(pending.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    if (records[i] && std::holds_alternative<StudyRevision>(*records[i])) {
      scan.file.revisions.push_back(std::get<StudyRevision>(std::move(*records[i])));
    } else if (records[i]) {
      scan.file.trials.push_back(std::get<TrialRecord>(std::move(*records[i])));
    } else {
      scan.problems.push_back(std::move(errors[i]));
      ++scan.skipped;
    }
  }
  return scan;
}

void write_record_file(const std::filesystem::path& path, const TrialRecord& record, FileSync sync) {
  const json document = to_json(record);
  check_before_writing(document, path.string() + ": record to write", record_from_json);
  replace_file_atomically(path, document.dump(2, ' ', false, json::error_handler_t::replace) + '\n', sync);
}

TrialRecord read_record_file(const std::filesystem::path& path) {
  const std::string where = path.string();
  return record_from_json(read_json_file(path, "trial record"), where);
}

}  // namespace memfront
