#pragma once
// Reading the files memfront reads (configs, studies, calibrations, trial
// records, results and Slurm state). Every failure is an InputError of one
// line in one format, which names the file and where in it, then what was
// expected:
//   "<file>: cannot read the <what>: <reason>"
//   "<file>:<line>:<column>: not valid JSON: <what the parser expected>"
//   "<file>[:<line>]: <json pointer>: <what was expected>"   (fail_at, for content)
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace memfront {

// The whole file as bytes. `what` names the file for people: "config file".
// Only a regular file (or a link to one) is read: a FIFO, device, socket or
// directory is refused without waiting on it.
std::string read_text_file(const std::filesystem::path& path, std::string_view what);

// The file open for reading (a descriptor the caller closes), by the same
// checks: only a regular file, refused at once otherwise. For readers that
// take a file a part at a time (core/jsonl.h JsonlReader).
int open_regular_file(const std::filesystem::path& path, std::string_view what);

// How deeply arrays and objects may nest in any file memfront reads: far
// more than any of its formats needs (a record nests 6 levels), far less than
// what the recursive handling of a parsed value can take on the stack.
inline constexpr int kMaxJsonDepth = 256;

// Parses `text`, which starts at line `first_line` of `source` (a JSON Lines
// reader passes the line's number; a whole document starts at line 1).
// Nesting deeper than kMaxJsonDepth is "not valid JSON" at the level past it.
nlohmann::json parse_json_text(std::string_view text, std::string_view source, int first_line = 1);

// read_text_file, then parse_json_text.
nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what);

// A key as one JSON pointer token (RFC 6901): "~" and "/" are escaped.
std::string json_pointer_token(std::string_view key);

// "<where>: <pointer>: <what>" ("/" for the whole document), where `where` is
// "<file>" or "<file>:<line>": the one format of a content error.
std::string pointed_message(std::string_view where, std::string_view pointer, std::string_view what);

// Throws InputError(pointed_message(where, pointer, what)).
[[noreturn]] void fail_at(std::string_view where, std::string_view pointer, std::string_view what);

// The member `key` of the object at `pointer` ("" for the document) as a T;
// fail_at "<where>: <pointer>/<key>: expected <expected>[, got <type>]" when
// the object lacks it or it does not convert.
template <class T>
T member_as(const nlohmann::json& object, std::string_view pointer, const std::string& key, std::string_view where,
            std::string_view expected) {
  const std::string at = std::string(pointer) + "/" + json_pointer_token(key);
  if (!object.is_object()) fail_at(where, pointer, "expected an object, got " + std::string(object.type_name()));
  const auto found = object.find(key);
  if (found == object.end()) fail_at(where, at, "missing (expected " + std::string(expected) + ")");
  // nlohmann would turn 2.5 into the integer 2 and true into 1: numbers and
  // flags are checked for their exact kind first.
  bool fits = true;
  if constexpr (std::is_same_v<T, bool>) {
    fits = found->is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    fits = found->is_number_integer();
  } else if constexpr (std::is_floating_point_v<T>) {
    fits = found->is_number();
  }
  try {
    if (fits) return found->get<T>();
  } catch (const nlohmann::json::exception&) {
  }
  fail_at(where, at, "expected " + std::string(expected) + ", got " + std::string(found->type_name()));
}

}  // namespace memfront
