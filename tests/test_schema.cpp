// results/schema.json against what memfront writes and against what
// results/SCHEMA.md forbids, with valijson (tests/results_schema.h).
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/json_file.h"
#include "core/jsonl.h"
#include "core/results.h"
#include "tests/results_schema.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The results files kept in the repository: the recorded sweeps and the
// reader's version-1 example.
TEST(ResultsSchema, EveryCommittedResultsFileIsValid) {
  int files = 0;
  for (const fs::path& folder : {fs::path(MEMFRONT_SOURCE_DIR) / "results", fs::path(MEMFRONT_TEST_DATA) / "results"}) {
    for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
      if (entry.path().extension() != ".jsonl") continue;
      SCOPED_TRACE(entry.path().string());
      EXPECT_EQ(results_schema_errors_in_file(entry.path()), "");
      ++files;
    }
  }
  EXPECT_GE(files, 2);
}

// A valid trial line, from the repository's example file.
json example_trial() {
  const std::string text = read_text_file(fs::path(MEMFRONT_TEST_DATA) / "results" / "example_v1.jsonl", "example");
  const JsonlText lines = split_jsonl(text);
  return json::parse(lines.lines.at(1).text);
}

json example_header() {
  const std::string text = read_text_file(fs::path(MEMFRONT_TEST_DATA) / "results" / "example_v1.jsonl", "example");
  return json::parse(split_jsonl(text).lines.at(0).text);
}

// What results/SCHEMA.md forbids, each in a line that is otherwise valid.
TEST(ResultsSchema, RejectsWhatTheSchemaDescriptionForbids) {
  const json valid = example_trial();
  ASSERT_EQ(valid["status"], "ok");
  ASSERT_EQ(results_schema_errors(valid), "");
  ASSERT_EQ(results_schema_errors(example_header()), "");

  auto changed = [&](const json::json_pointer& at, const json& value) {
    json line = valid;
    line[at] = value;
    return line;
  };
  const struct {
    const char* what;
    json line;
  } invalid[] = {
      {"ok without metrics", changed(json::json_pointer("/metrics"), nullptr)},
      {"ok with an error", changed(json::json_pointer("/error"), "rank 1 ran out of memory")},
      {"an id that is not 16 hex digits", changed(json::json_pointer("/id"), "xyz")},
      {"an upper-case id", changed(json::json_pointer("/id"), "3F2A9C1E5B7D0A44")},
      {"an empty config", changed(json::json_pointer("/config"), json::object())},
      {"an unknown strategy", changed(json::json_pointer("/config/shard/strategy"), "zero9")},
      {"a byte count written as 1e6", changed(json::json_pointer("/metrics/peak_bytes/total"), 1e6)},
      {"a fractional byte count", changed(json::json_pointer("/metrics/ranks/0/rss_peak_bytes"), 2.5)},
  };
  for (const auto& [what, line] : invalid) {
    EXPECT_NE(results_schema_errors(line), "") << what << " was accepted";
  }

  // A failed trial may have no metrics and has its error.
  json failed = valid;
  failed["status"] = "failed";
  failed["metrics"] = nullptr;
  failed["error"] = "c.json: /backend: backend=cuda cannot run here";
  EXPECT_EQ(results_schema_errors(failed), "");
}

// The schema's strategy names are the config's: one list, checked here.
TEST(ResultsSchema, StrategiesAreTheConfigs) {
  const json schema = read_json_file(fs::path(MEMFRONT_SOURCE_DIR) / "results" / "schema.json", "schema");
  const json& names = schema["$defs"]["config"]["properties"]["shard"]["properties"]["strategy"]["enum"];
  ASSERT_EQ(names.size(), kShardStrategies.size());
  for (size_t i = 0; i < kShardStrategies.size(); ++i) {
    EXPECT_EQ(names[i], std::string(to_string(kShardStrategies[i].strategy)));
  }
}

}  // namespace
}  // namespace memfront
