#pragma once
// JSON Lines files and durable writes: the one place that knows the line rules
// of memfront's JSONL files (results, the Slurm state) and how a file is
// written so that a crash or a power cut cannot leave it corrupt.
//
// The line rules: every line ends with '\n'. A writer puts a line and its
// '\n' in one write() and fsyncs it, so a crash leaves at worst a torn last
// line: one without its '\n' whose JSON ends before its value does. Readers
// leave a torn tail out (and say so); any other last line that lacks only its
// '\n' is kept, and read (and refused, if it is malformed) as a line.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memfront {

struct JsonlLine {
  std::string_view text;  // without its '\n'
  int number = 0;         // 1-based, counted from the start of the file
  size_t begin = 0;       // byte offset of the line in the file
  size_t next = 0;        // byte offset of the line after it
};

struct JsonlText {
  std::vector<JsonlLine> lines;        // the complete lines, blank ones included
  std::optional<JsonlLine> torn_tail;  // a last line cut short (or still being written)
  size_t complete_bytes = 0;           // where the complete lines end (the torn tail begins)
  bool missing_final_newline = false;  // the last line is complete JSON but lacks its '\n'
};

// The lines of `text` from byte `offset` on, which must be the start of a line.
JsonlText split_jsonl(std::string_view text, size_t offset = 0);

// A JSON Lines file read a line at a time, holding one line and a read
// buffer, never the whole file: the lines, numbers, offsets and torn tail
// are those split_jsonl finds in the whole text. For files too large to hold
// (a results file of gigabytes).
class JsonlReader {
 public:
  // Opens the file as read_text_file does (core/json_file.h: a regular file
  // only, InputError naming `what`), at byte `offset`, which must be the start
  // of line `number`.
  JsonlReader(const std::filesystem::path& path, std::string_view what, uint64_t offset = 0, int number = 1);
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;
  ~JsonlReader();

  // The next line (its text valid until the next call), a last one that
  // lacks only its '\n' included; none at the end of the file, or where the
  // file ends in a torn tail (torn_tail() then says so).
  std::optional<JsonlLine> next();
  const std::optional<JsonlLine>& torn_tail() const { return torn_tail_; }

 private:
  bool read_more();  // false at the end of the file

  std::filesystem::path path_;
  int fd_ = -1;
  std::string buffer_;   // bytes from the start of the next line on
  uint64_t buffer_at_;   // the file offset of buffer_[0]
  size_t line_begin_ = 0;   // in buffer_: where the next line begins
  size_t searched_to_ = 0;  // in buffer_: no '\n' from line_begin_ up to here
  int number_;
  bool at_end_ = false;
  std::optional<JsonlLine> torn_tail_;
};

// True for a line of spaces, tabs and '\r' only (readers skip them).
bool is_blank_line(std::string_view line);

// Appends lines to one JSONL file, one complete fsynced line per write().
// Errors are std::runtime_error "<file>: cannot <what it was doing>: <reason>".
class JsonlAppender {
 public:
  // A new file holding `first_line` (synced, with its directory); nullopt when
  // the file exists already.
  static std::optional<JsonlAppender> create_new(const std::filesystem::path& path, std::string_view first_line);
  // An existing file (or a new empty one with `create_if_missing`). `check`
  // sees the file's text first and may throw to refuse it; then a torn tail is
  // cut off, or a last line lacking its '\n' gets one, and repaired() says so.
  template <class Check>
  static JsonlAppender open(const std::filesystem::path& path, bool create_if_missing, Check check) {
    JsonlAppender appender = open_file(path, create_if_missing);
    const std::string text = appender.read_all();
    check(std::string_view(text));
    appender.repair_tail(text);
    return appender;
  }
  static JsonlAppender open(const std::filesystem::path& path, bool create_if_missing) {
    return open(path, create_if_missing, [](std::string_view) {});
  }

  JsonlAppender(JsonlAppender&& other) noexcept;
  JsonlAppender& operator=(JsonlAppender&& other) noexcept;
  JsonlAppender(const JsonlAppender&) = delete;
  JsonlAppender& operator=(const JsonlAppender&) = delete;
  ~JsonlAppender();

  // Appends `line` (no '\n' inside; std::invalid_argument otherwise) and its
  // '\n' with one write(), then fsyncs. On a failed write the part written is
  // cut off again (one writer per file), so the file stays valid.
  void append(std::string_view line);
  // "<file>:<line>: cut off a torn last line (<n> bytes)" or "...: ended the
  // last line with its missing newline" when open() repaired the file.
  const std::optional<std::string>& repaired() const { return repaired_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  JsonlAppender(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  static JsonlAppender open_file(const std::filesystem::path& path, bool create_if_missing);
  std::string read_all() const;
  void repair_tail(std::string_view text);

  std::filesystem::path path_;
  int fd_ = -1;
  std::optional<std::string> repaired_;
};

// How far replace_file_atomically goes: durable, the new content is there
// after a power cut too (two fsyncs, 5-30 ms on a virtual disk); atomic_only,
// readers see the old file or the new one but a crash of the machine may
// leave the old one.
enum class FileSync { durable, atomic_only };

// Replaces the file's content atomically (and durably by default): readers
// see the old file or the new one, never a part. Writes a temporary file
// beside it, fsyncs it, renames it over the file and fsyncs the directory
// (atomic_only: without the fsyncs). std::runtime_error as JsonlAppender's.
void replace_file_atomically(const std::filesystem::path& path, std::string_view content,
                             FileSync sync = FileSync::durable);

}  // namespace memfront
