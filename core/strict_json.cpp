#include "core/strict_json.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <utility>

#include "core/json_file.h"

namespace memfront {

using nlohmann::json;

namespace {

// "string \"fast\"", "number -3", "object": what a reader found, for errors.
std::string describe(const json& value) {
  std::string text = value.type_name();
  if (value.is_primitive() && !value.is_null()) {
    constexpr size_t kMaxShown = 40;
    std::string shown = value.dump(-1, ' ', false, json::error_handler_t::replace);
    if (shown.size() > kMaxShown) shown = shown.substr(0, kMaxShown) + "...";
    text += " " + shown;
  }
  return text;
}

}  // namespace

JsonField::JsonField(const json& value, std::string_view where, std::string pointer)
    : value_(value), where_(where), pointer_(std::move(pointer)) {}

void JsonField::fail(std::string_view what) const { fail_at(where_, pointer_, what); }

void JsonField::fail_expected(std::string_view expected) const {
  fail("expected " + std::string(expected) + ", got " + describe(value_));
}

void JsonField::fail_below(std::string_view pointer, std::string_view what) const {
  fail_at(where_, pointer_ + std::string(pointer), what);
}

JsonField JsonField::member(std::string_view key, std::string_view expected) const {
  const std::string pointer = pointer_ + "/" + json_pointer_token(key);
  const auto found = value_.find(key);
  if (found == value_.end()) fail_at(where_, pointer, "missing (expected " + std::string(expected) + ")");
  return JsonField(*found, where_, pointer);
}

JsonField JsonField::element(size_t index) const {
  return JsonField(value_[index], where_, pointer_ + "/" + std::to_string(index));
}

const JsonField& JsonField::expect_object() const {
  if (!value_.is_object()) fail_expected("an object");
  return *this;
}

const JsonField& JsonField::expect_array() const {
  if (!value_.is_array()) fail_expected("an array");
  return *this;
}

const JsonField& JsonField::only_keys(std::initializer_list<std::string_view> keys) const {
  expect_object();
  for (const auto& item : value_.items()) {
    if (std::ranges::find(keys, std::string_view(item.key())) != keys.end()) continue;
    std::string expected;
    for (std::string_view key : keys) {
      if (!expected.empty()) expected += ", ";
      expected += key;
    }
    std::string pointer = "/";
    pointer += json_pointer_token(item.key());
    fail_below(pointer, "unknown key (expected one of: " + expected + ")");
  }
  return *this;
}

std::string JsonField::as_string() const {
  if (!value_.is_string()) fail_expected("a string");
  return value_.get<std::string>();
}

bool JsonField::as_bool() const {
  if (!value_.is_boolean()) fail_expected("a boolean");
  return value_.get<bool>();
}

double JsonField::as_real() const {
  if (value_.is_number()) return value_.get<double>();
  if (value_.is_string()) {
    const auto& text = value_.get_ref<const std::string&>();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  fail_expected("a number");
}

uint64_t JsonField::as_unsigned() const {
  if (value_.is_number_unsigned()) return value_.get<uint64_t>();
  if (value_.is_number_integer() && value_.get<int64_t>() >= 0) return value_.get<uint64_t>();
  fail_expected("a non-negative integer");
}

int JsonField::as_non_negative_int() const {
  if (!value_.is_number_integer() || value_.get<int64_t>() < 0 || value_.get<int64_t>() > INT_MAX) {
    fail_expected("a non-negative integer no larger than " + std::to_string(INT_MAX));
  }
  return value_.get<int>();
}

std::string JsonField::string_at(std::string_view key) const { return member(key, "a string").as_string(); }

bool JsonField::bool_at(std::string_view key) const { return member(key, "a boolean").as_bool(); }

double JsonField::real_at(std::string_view key) const { return member(key, "a number").as_real(); }

double JsonField::positive_at(std::string_view key) const {
  const JsonField field = member(key, "a positive finite number");
  const double x = field.as_real();
  if (!(x > 0) || !std::isfinite(x)) field.fail_expected("a positive finite number");
  return x;
}

double JsonField::non_negative_at(std::string_view key) const {
  const JsonField field = member(key, "a finite number >= 0");
  const double x = field.as_real();
  if (!(x >= 0) || !std::isfinite(x)) field.fail_expected("a finite number >= 0");
  return x;
}

uint64_t JsonField::unsigned_at(std::string_view key) const {
  return member(key, "a non-negative integer").as_unsigned();
}

int JsonField::non_negative_int_at(std::string_view key) const {
  return member(key, "a non-negative integer").as_non_negative_int();
}

JsonField JsonField::object_at(std::string_view key) const {
  JsonField field = member(key, "an object");
  field.expect_object();
  return field;
}

JsonField JsonField::array_at(std::string_view key) const {
  JsonField field = member(key, "an array");
  field.expect_array();
  return field;
}

std::optional<double> JsonField::optional_real_at(std::string_view key) const {
  const JsonField field = member(key, "a number or null");
  if (field.is_null()) return std::nullopt;
  return field.as_real();
}

json JsonField::optional_object_at(std::string_view key) const {
  const JsonField field = member(key, "an object or null");
  if (!field.is_null() && !field.value_.is_object()) field.fail_expected("an object or null");
  return field.value_;
}

void JsonField::expect_string_at(std::string_view key, std::string_view expected) const {
  // Appended piece by piece: g++ 12 misreports `"\"" + std::string(...)` (-Wrestrict).
  std::string quoted = "\"";
  quoted += expected;
  quoted += '"';
  const JsonField field = member(key, quoted);
  if (!field.value_.is_string() || field.value_.get_ref<const std::string&>() != expected) {
    field.fail_expected(quoted);
  }
}

}  // namespace memfront
