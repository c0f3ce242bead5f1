// Hostile files: every way a file memfront reads can be malformed ends in one
// line that names the file, where in it, and what was expected; never in a
// crash, a hang or a silently different reading.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/input_error_of.h"

#include "core/arena.h"
#include "core/config.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/jsonl.h"
#include "core/results.h"
#include "tuner/expr.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("faults-files-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string nested(int levels) { return std::string(static_cast<size_t>(levels), '[') + std::string(static_cast<size_t>(levels), ']'); }

// A results file whose header is valid, as `memfront sweep` writes it.
std::string header_line() {
  ResultsHeader header;
  header.study = "hostile";
  header.created = "2026-01-01T00:00:00Z";
  return to_json(header).dump() + "\n";
}

TEST(DeepJson, TheReaderRefusesNestingPastTheLimitWithItsPosition) {
  EXPECT_NO_THROW(parse_json_text(nested(kMaxJsonDepth), "ok.json"));
  const std::string too_deep = input_error_of([] { parse_json_text("{\"a\":\n " + nested(200000) + "}", "deep.json"); });
  EXPECT_EQ(too_deep, "deep.json:2:" + std::to_string(kMaxJsonDepth + 1) + ": not valid JSON: nested deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels of arrays and objects");
  // Brackets inside strings are text, not nesting.
  EXPECT_NO_THROW(parse_json_text("\"" + std::string(100000, '[') + "\\\"\"", "text.json"));
}

TEST(DeepJson, AResultsLineNestedTooDeepIsRefusedWithItsLine) {
  const fs::path dir = fresh_dir("deep-results");
  const fs::path path = dir / "deep.jsonl";
  std::ofstream(path) << header_line() << "{\"id\": " << nested(100000) << "}\n";
  const std::string error = input_error_of([&] { read_results(path); });
  EXPECT_NE(error.find(path.string() + ":2:"), std::string::npos) << error;
  EXPECT_NE(error.find("nested deeper than"), std::string::npos) << error;
  fs::remove_all(dir);
}

TEST(DeepJson, AStudyNestedTooDeepIsRefused) {
  const fs::path dir = fresh_dir("deep-study");
  const fs::path path = dir / "study.json";
  std::ofstream(path) << "{\"study\": \"x\", \"space\": " << std::string(200000, '{') << "}";
  const std::string error = input_error_of([&] { read_json_file(path, "study file"); });
  EXPECT_NE(error.find(path.string() + ":1:"), std::string::npos) << error;
  EXPECT_NE(error.find("nested deeper than"), std::string::npos) << error;
  fs::remove_all(dir);
}

TEST(NumbersInRange, ANumberBeyondDoubleRangeIsRefusedWithFileLineAndRange) {
  EXPECT_EQ(input_error_of([] { parse_json_text("{\"a\":\n  [1, -1e309]}", "n.json", 4); }),
            "n.json:5:7: not valid JSON: the number -1e309 is out of range (accepted: magnitudes up to 1.79769e+308)");
}

TEST(NumbersInRange, ACompleteLastLineWithoutItsNewlineIsReadNotDroppedAsTorn) {
  // Complete but malformed (a number beyond range): a line to refuse, not a torn tail.
  const JsonlText overflow = split_jsonl("{\"a\": 1}\n{\"b\": 1e309}");
  EXPECT_EQ(overflow.lines.size(), 2u);
  EXPECT_FALSE(overflow.torn_tail);
  // Trailing garbage after a complete value is malformed too; so is a number
  // no writer writes, wherever the line ends.
  EXPECT_FALSE(split_jsonl("{\"a\": 1} x").torn_tail);
  EXPECT_FALSE(split_jsonl("{\"a\": 1e309").torn_tail);
  // Only a line cut short is torn: in a number, a literal, a string, an exponent.
  for (const char* torn : {"{\"a\": 1", "{\"a\": tru", "{\"a\": \"x", "{\"a\": 1e"}) {
    const JsonlText split = split_jsonl(std::string("{}\n") + torn);
    EXPECT_TRUE(split.torn_tail) << torn;
    EXPECT_EQ(split.lines.size(), 1u) << torn;
  }

  const fs::path dir = fresh_dir("overflow-results");
  const fs::path path = dir / "overflow.jsonl";
  std::ofstream(path) << header_line() << "{\"id\": \"x\", \"status\": \"ok\", \"value\": 2e400}";
  const std::string error = input_error_of([&] { read_results(path); });
  EXPECT_NE(error.find(path.string() + ":2:"), std::string::npos) << error;
  EXPECT_NE(error.find("the number 2e400 is out of range"), std::string::npos) << error;
  fs::remove_all(dir);
}

TEST(NumbersInRange, ByteSizesPastUint64OrWithANumberAsUnitAreRefused) {
  EXPECT_EQ(parse_bytes("1e1e400"), std::nullopt);
  EXPECT_EQ(parse_bytes("1e30"), std::nullopt);
  EXPECT_EQ(parse_bytes("16EB"), std::nullopt);
  EXPECT_EQ(parse_bytes("1.5 KiB"), 1536u);
  EXPECT_EQ(byte_unit_scale("e3"), std::nullopt);
  EXPECT_EQ(byte_unit_scale("GiB"), 0x1p30);
}

TEST(NumbersInRange, ExpressionNumbersAreReadWhole) {
  // "2e3e3" was 2e3 in the unit "e3", read as the byte size 1e3: 2e6.
  EXPECT_NE(input_error_of([] { Expr::parse("peak_mem < 2e3e3", "w"); }).find("unknown unit 'e3'"), std::string::npos);
  EXPECT_NE(input_error_of([] { Expr::parse("peak_mem < 1e1e400", "w"); }).find("unknown unit 'e400'"),
            std::string::npos);
  const std::string overflow = input_error_of([] { Expr::parse("peak_mem < 1e400", "w"); });
  EXPECT_NE(overflow.find("the number 1e400 is out of range (accepted: magnitudes up to 1.79769e+308)"),
            std::string::npos)
      << overflow;
  EXPECT_NE(input_error_of([] { Expr::parse("peak_mem < 1e300TB", "w"); }).find("out of range"), std::string::npos);
}

TEST(NumbersInRange, ConfigNumbersAreCheckedAsWrittenNotAfterConversion) {
  const auto config_error = [](const json& config) {
    return input_error_of([&] { parse_config(config, "c.json"); });
  };
  EXPECT_EQ(config_error({{"world", 2}, {"placement", {{"order", {0, 4294967296ULL}}}}}),
            "c.json: /placement/order/1: expected a node index 0..1, got 4294967296");
  EXPECT_EQ(config_error({{"world", 18446744073709551615ULL}}),
            "c.json: /world: must be 1..1048576, got 18446744073709551615");
  EXPECT_EQ(config_error({{"placement", {{"link_latency_us", 1e300}}}}),
            "c.json: /placement/link_latency_us: must be 0..1e6 (microseconds), got 1e+300");
  EXPECT_EQ(config_error({{"placement", {{"link_bandwidth_gigabytes_per_s", 1e-300}}}}),
            "c.json: /placement/link_bandwidth_gigabytes_per_s: must be 1e-6..1e6 (GB/s), got 1e-300");
}

TEST(SpecialFiles, OnlyRegularFilesAreRead) {
  const fs::path dir = fresh_dir("special");
  const fs::path fifo = dir / "record.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(input_error_of([&] { read_record_file(fifo); }),
            fifo.string() + ": cannot read the trial record: not a regular file (a FIFO)");
  const fs::path zero = dir / "results.jsonl";
  fs::create_symlink("/dev/zero", zero);
  EXPECT_EQ(input_error_of([&] { read_results(zero); }),
            zero.string() + ": cannot read the results file: not a regular file (a device)");
  EXPECT_EQ(input_error_of([&] { read_json_file(dir, "study file"); }),
            dir.string() + ": cannot read the study file: not a regular file (a directory)");
  fs::remove_all(dir);
}

// A process killed while it creates a JSONL file (a results file) leaves the
// file with its whole first line or no file: never one that --resume refuses.
TEST(FileCreation, AKillWhileCreatingLeavesTheWholeFirstLineOrNoFile) {
  const fs::path dir = fresh_dir("create");
  const std::string line = "{\"pad\": \"" + std::string(size_t{32} << 20, 'x') + "\"}";
  for (int delay_ms : {1, 5, 20, 60}) {
    const fs::path path = dir / ("results-" + std::to_string(delay_ms) + ".jsonl");
    const pid_t child = ::fork();
    if (child == 0) {
      JsonlAppender::create_new(path, line);
      ::_exit(0);
    }
    ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    if (fs::exists(path)) {
      EXPECT_EQ(fs::file_size(path), line.size() + 1) << "killed after " << delay_ms << " ms";
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace memfront
