// core/jsonl.h: the line rules of memfront's JSON Lines files, the appender
// (one fsynced line per write, a torn tail repaired and reported) and the
// atomic replace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/jsonl.h"

namespace memfront {
namespace {

namespace fs = std::filesystem;

class JsonlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("memfront_jsonl_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

  fs::path dir_;
};

TEST(SplitJsonl, CompleteLinesTornTailAndMissingNewline) {
  const std::string text = "{\"a\":1}\n\n{\"b\":2}\n{\"c\":";
  const JsonlText split = split_jsonl(text);
  ASSERT_EQ(split.lines.size(), 3u);
  EXPECT_EQ(split.lines[0].text, "{\"a\":1}");
  EXPECT_TRUE(is_blank_line(split.lines[1].text));
  EXPECT_EQ(split.lines[2].number, 3);
  ASSERT_TRUE(split.torn_tail);
  EXPECT_EQ(split.torn_tail->number, 4);
  EXPECT_EQ(split.torn_tail->text, "{\"c\":");
  EXPECT_EQ(split.complete_bytes, text.size() - 5);
  EXPECT_FALSE(split.missing_final_newline);

  // A last line that is JSON but lacks its '\n' was written whole: kept.
  const JsonlText unterminated = split_jsonl("{\"a\":1}\n{\"b\":2}");
  EXPECT_EQ(unterminated.lines.size(), 2u);
  EXPECT_FALSE(unterminated.torn_tail);
  EXPECT_TRUE(unterminated.missing_final_newline);

  // From an offset, lines keep their numbers in the whole file.
  const JsonlText later = split_jsonl(text, 8);
  ASSERT_EQ(later.lines.size(), 2u);
  EXPECT_EQ(later.lines[0].number, 2);
  EXPECT_EQ(later.lines[1].begin, 9u);
}

// The lines JsonlReader reads from a file, as split_jsonl gives them.
struct ReadLines {
  std::vector<std::string> texts;
  std::vector<int> numbers;
  std::vector<size_t> begins, nexts;
  std::optional<std::string> torn;
  int torn_number = 0;
  bool operator==(const ReadLines&) const = default;
};

ReadLines from_split(const std::string& text) {
  ReadLines lines;
  const JsonlText split = split_jsonl(text);
  for (const JsonlLine& line : split.lines) {
    lines.texts.emplace_back(line.text);
    lines.numbers.push_back(line.number);
    lines.begins.push_back(line.begin);
    lines.nexts.push_back(line.next);
  }
  if (split.torn_tail) lines.torn = std::string(split.torn_tail->text), lines.torn_number = split.torn_tail->number;
  return lines;
}

ReadLines from_reader(JsonlReader& reader) {
  ReadLines lines;
  while (const std::optional<JsonlLine> line = reader.next()) {
    lines.texts.emplace_back(line->text);
    lines.numbers.push_back(line->number);
    lines.begins.push_back(line->begin);
    lines.nexts.push_back(line->next);
  }
  if (reader.torn_tail()) lines.torn = std::string(reader.torn_tail()->text), lines.torn_number = reader.torn_tail()->number;
  return lines;
}

// A file read a line at a time gives what its whole text gives, lines longer
// than the reader's buffer included; and a read can start at any line.
TEST_F(JsonlTest, TheReaderGivesTheLinesOfTheWholeText) {
  const std::string long_line = "{\"a\": \"" + std::string(3 << 20, 'x') + "\"}";
  const std::vector<std::string> texts = {"",
                                          "{}\n",
                                          "{}\n\n[1]\n",
                                          "{}\n{\"c\":",
                                          "{}\n{\"c\": 1}",
                                          long_line + "\n{}\n" + long_line,
                                          "{}\n" + long_line.substr(0, long_line.size() - 2)};
  for (const std::string& text : texts) {
    const fs::path path = dir_ / "lines.jsonl";
    write(path, text);
    JsonlReader reader(path, "test file");
    const ReadLines read = from_reader(reader);
    EXPECT_TRUE(read == from_split(text)) << text.substr(0, 40);
  }
  const fs::path path = dir_ / "lines.jsonl";
  write(path, "{}\n[2]\n[3]\n");
  JsonlReader from_second(path, "test file", 3, 2);
  const std::optional<JsonlLine> second = from_second.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->text, "[2]");
  EXPECT_EQ(second->number, 2);
  EXPECT_EQ(second->next, 7u);
  EXPECT_THROW(JsonlReader(dir_, "test file"), std::exception);  // a directory is no file to read
}

TEST_F(JsonlTest, CreateNewWritesTheFirstLineAndRefusesAnExistingFile) {
  const fs::path path = dir_ / "a.jsonl";
  std::optional<JsonlAppender> appender = JsonlAppender::create_new(path, "{\"header\":1}");
  ASSERT_TRUE(appender);
  appender->append("{\"line\":2}");
  EXPECT_EQ(read(path), "{\"header\":1}\n{\"line\":2}\n");
  EXPECT_FALSE(JsonlAppender::create_new(path, "{}"));
  EXPECT_EQ(read(path), "{\"header\":1}\n{\"line\":2}\n");
  EXPECT_THROW(appender->append("{\"two\":\n\"lines\"}"), std::invalid_argument);
}

TEST_F(JsonlTest, OpenRepairsATornTailAndReportsIt) {
  const fs::path path = dir_ / "a.jsonl";
  write(path, "{\"a\":1}\n{\"b\":");
  JsonlAppender appender = JsonlAppender::open(path, false);
  ASSERT_TRUE(appender.repaired());
  EXPECT_EQ(*appender.repaired(), path.string() + ":2: cut off a torn last line (5 bytes; a crash mid-write)");
  appender.append("{\"b\":2}");
  EXPECT_EQ(read(path), "{\"a\":1}\n{\"b\":2}\n");
}

TEST_F(JsonlTest, OpenEndsACompleteLastLine) {
  const fs::path path = dir_ / "a.jsonl";
  write(path, "{\"a\":1}");
  JsonlAppender appender = JsonlAppender::open(path, false);
  ASSERT_TRUE(appender.repaired());
  EXPECT_EQ(*appender.repaired(), path.string() + ":1: ended the last line with its missing newline");
  appender.append("{\"b\":2}");
  EXPECT_EQ(read(path), "{\"a\":1}\n{\"b\":2}\n");
}

TEST_F(JsonlTest, OpenChecksBeforeRepairing) {
  const fs::path path = dir_ / "a.jsonl";
  write(path, "{\"a\":1}\n{\"b\":");
  EXPECT_THROW(JsonlAppender::open(path, false, [](std::string_view) { throw std::runtime_error("refused"); }),
               std::runtime_error);
  EXPECT_EQ(read(path), "{\"a\":1}\n{\"b\":") << "a refused file is left as it was";
}

TEST_F(JsonlTest, OpenCreatesOnlyWhenAsked) {
  const fs::path path = dir_ / "new.jsonl";
  EXPECT_THROW(JsonlAppender::open(path, false), std::runtime_error);
  JsonlAppender appender = JsonlAppender::open(path, true);
  EXPECT_FALSE(appender.repaired());
  appender.append("{}");
  EXPECT_EQ(read(path), "{}\n");
}

// Durable or not (the fsyncs), the replacement is the same.
TEST_F(JsonlTest, ReplaceLeavesTheNewContentAndNoTemporaryFile) {
  for (FileSync sync : {FileSync::durable, FileSync::atomic_only}) {
    SCOPED_TRACE(sync == FileSync::durable ? "durable" : "atomic_only");
    const fs::path path = dir_ / "record.json";
    write(path, "old");
    replace_file_atomically(path, "new\n", sync);
    EXPECT_EQ(read(path), "new\n");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
    // A directory that does not exist: an error naming the file, nothing left behind.
    try {
      replace_file_atomically(dir_ / "missing" / "x.json", "x", sync);
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("missing/x.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace memfront
