#pragma once
// Reading the JSON that memfront wrote (results records and headers,
// predictions, calibration files) member by member: the one way to do it. A
// JsonField is one value of a document with the JSON pointer that leads to it;
// its accessors check presence and type and throw InputError
// "<where>: <json pointer>: <what was expected>, got <what was found>"
// (core/json_file.h's format), so a reader only says what it expects.
//
// Members a reader does not ask for are ignored (a results record may carry
// more than this memfront reads), unless only_keys() is called: files whose
// every member memfront defines (calibration, prediction) reject the others.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace memfront {

class JsonField {
 public:
  // The document itself: pointer "" (written "/" in errors).
  JsonField(const nlohmann::json& value, std::string_view where, std::string pointer = "");

  const nlohmann::json& value() const { return value_; }
  const std::string& pointer() const { return pointer_; }
  bool is_null() const { return value_.is_null(); }
  bool has(std::string_view key) const { return value_.contains(key); }

  [[noreturn]] void fail(std::string_view what) const;
  // "expected <expected>, got <type and value found>".
  [[noreturn]] void fail_expected(std::string_view expected) const;
  // A failure at `pointer` below this value ("" for the value itself).
  [[noreturn]] void fail_below(std::string_view pointer, std::string_view what) const;

  // A member of this object; "missing (expected <expected>)" when absent.
  JsonField member(std::string_view key, std::string_view expected) const;
  JsonField element(size_t index) const;

  const JsonField& expect_object() const;
  const JsonField& expect_array() const;
  // Checks this is an object with no member beyond `keys`:
  // "<pointer>/<key>: unknown key (expected one of: a, b, ...)".
  const JsonField& only_keys(std::initializer_list<std::string_view> keys) const;

  std::string as_string() const;
  bool as_bool() const;
  // A number, or one of the strings "NaN", "Infinity", "-Infinity" that
  // results files write for non-finite ones.
  double as_real() const;
  uint64_t as_unsigned() const;
  int as_non_negative_int() const;  // no larger than INT_MAX

  // Typed members: member(key, "...") followed by the matching check.
  std::string string_at(std::string_view key) const;
  bool bool_at(std::string_view key) const;
  double real_at(std::string_view key) const;
  double positive_at(std::string_view key) const;      // finite and > 0
  double non_negative_at(std::string_view key) const;  // finite and >= 0
  uint64_t unsigned_at(std::string_view key) const;
  int non_negative_int_at(std::string_view key) const;
  JsonField object_at(std::string_view key) const;
  JsonField array_at(std::string_view key) const;
  std::optional<double> optional_real_at(std::string_view key) const;
  // An object or null, as JSON: free-form members (a rank's gpu).
  nlohmann::json optional_object_at(std::string_view key) const;
  // A string equal to `expected` (a line's "kind").
  void expect_string_at(std::string_view key, std::string_view expected) const;

 private:
  const nlohmann::json& value_;
  std::string_view where_;
  std::string pointer_;
};

}  // namespace memfront
