// core/json_file.h: one reader for every JSON file memfront reads, and one
// error format: "<file>:<line>:<column>: not valid JSON: ..." for syntax,
// "<file>[:<line>]: <json pointer>: <what was expected>" for content.
#include <gtest/gtest.h>

#include "tests/input_error_of.h"
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/json_file.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(JsonFile, SyntaxErrorsNameFileLineAndColumn) {
  EXPECT_EQ(input_error_of([] { parse_json_text("{\n  \"a\": 1,\n  \"b\" 2\n}", "c.json"); }),
            "c.json:3:7: not valid JSON: syntax error while parsing object separator - unexpected number literal; "
            "expected ':'");
  // A line of a JSON Lines file carries the file's line number.
  const std::string message = input_error_of([] { parse_json_text("{\"x\": tru}", "r.jsonl", 12); });
  EXPECT_EQ(message.rfind("r.jsonl:12:10: not valid JSON: ", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";
  // Cut short: the position is the end of the text.
  EXPECT_EQ(input_error_of([] { parse_json_text("{\"model\": ", "c.json"); }).rfind("c.json:1:11: not valid JSON: ", 0),
            0u);
}

TEST(JsonFile, UnreadableFileNamesWhatItIs) {
  EXPECT_EQ(input_error_of([] { read_json_file("/nonexistent/x.json", "config file"); }),
            "/nonexistent/x.json: cannot read the config file: No such file or directory");
}

TEST(JsonFile, ReadsAFileWhole) {
  const fs::path path = fs::path(::testing::TempDir()) / ("memfront_json_file_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << R"({"a": [1, 2.5, "x"]})";
  EXPECT_EQ(read_json_file(path, "test file"), json::parse(R"({"a": [1, 2.5, "x"]})"));
  fs::remove(path);
}

TEST(JsonFile, MembersAreCheckedForTheirExactKind) {
  const json document = json::parse(R"({"n": 2.5, "b": true, "s": "x", "i": 3, "o": {"k": 1}})");
  EXPECT_EQ(member_as<int>(document, "", "i", "f.json", "a count"), 3);
  EXPECT_EQ(member_as<double>(document, "", "i", "f.json", "seconds"), 3.0);
  EXPECT_EQ(member_as<int>(document["o"], "/o", "k", "f.json", "a count"), 1);
  EXPECT_EQ(input_error_of([&] { member_as<int>(document, "", "n", "f.json", "a count"); }),
            "f.json: /n: expected a count, got number");
  EXPECT_EQ(input_error_of([&] { member_as<int>(document, "", "b", "f.json", "a count"); }),
            "f.json: /b: expected a count, got boolean");
  EXPECT_EQ(input_error_of([&] { member_as<std::string>(document, "", "i", "f.json:4", "a name"); }),
            "f.json:4: /i: expected a name, got number");
  EXPECT_EQ(input_error_of([&] { member_as<int>(document["o"], "/o", "m", "f.json", "a count"); }),
            "f.json: /o/m: missing (expected a count)");
  EXPECT_EQ(input_error_of([&] { member_as<int>(document["s"], "/s", "m", "f.json", "a count"); }),
            "f.json: /s: expected an object, got string");
}

TEST(JsonFile, PointerTokensEscapeTildeAndSlash) {
  EXPECT_EQ(json_pointer_token("phase_s"), "phase_s");
  EXPECT_EQ(json_pointer_token("a/b~c"), "a~1b~0c");
  const json document = json::parse(R"({"a/b": "x"})");
  EXPECT_EQ(input_error_of([&] { member_as<int>(document, "", "a/b", "f.json", "a count"); }),
            "f.json: /a~1b: expected a count, got string");
}

}  // namespace
}  // namespace memfront
