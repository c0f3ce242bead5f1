#include "core/strict_json.h"

#include <algorithm>
#include <cmath>

#include "core/json_file.h"

namespace memfront {

using nlohmann::json;

StrictObject::StrictObject(const json& value, std::string_view where, std::string pointer,
                           std::initializer_list<const char*> keys)
    : value_(value), where_(where), pointer_(std::move(pointer)) {
  if (!value_.is_object()) fail(pointer_, "expected an object, got " + std::string(value_.type_name()));
  for (const auto& item : value_.items()) {
    if (std::none_of(keys.begin(), keys.end(), [&](const char* key) { return item.key() == key; })) {
      std::string expected;
      for (const char* key : keys) expected += (expected.empty() ? "" : ", ") + std::string(key);
      fail(at(item.key()), "unknown key (expected one of: " + expected + ")");
    }
  }
}

double StrictObject::number(const char* key) const {
  const json& v = member(key, "a number");
  if (!v.is_number()) fail(at(key), "expected a number, got " + v.dump());
  return v.get<double>();
}

double StrictObject::positive(const char* key) const {
  const double x = number(key);
  if (!(x > 0) || !std::isfinite(x)) fail(at(key), "expected a positive finite number, got " + member(key, "").dump());
  return x;
}

double StrictObject::non_negative(const char* key) const {
  const double x = number(key);
  if (!(x >= 0) || !std::isfinite(x)) fail(at(key), "expected a finite number >= 0, got " + member(key, "").dump());
  return x;
}

std::optional<double> StrictObject::optional_non_negative(const char* key) const {
  if (member(key, "a number or null").is_null()) return std::nullopt;
  return non_negative(key);
}

uint64_t StrictObject::count(const char* key) const {
  const json& v = member(key, "a non-negative integer");
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    fail(at(key), "expected a non-negative integer, got " + v.dump());
  }
  return v.get<uint64_t>();
}

bool StrictObject::boolean(const char* key) const {
  const json& v = member(key, "true or false");
  if (!v.is_boolean()) fail(at(key), "expected true or false, got " + v.dump());
  return v.get<bool>();
}

std::string StrictObject::text(const char* key) const {
  const json& v = member(key, "a string");
  if (!v.is_string()) fail(at(key), "expected a string, got " + v.dump());
  return v.get<std::string>();
}

StrictObject StrictObject::object(const char* key, std::initializer_list<const char*> keys) const {
  return StrictObject(member(key, "an object"), where_, at(key), keys);
}

void StrictObject::fail(const std::string& pointer, const std::string& what) const {
  fail_at(where_, pointer, what);
}

const json& StrictObject::member(const char* key, const std::string& expected) const {
  const auto it = value_.find(key);
  if (it == value_.end()) fail(at(key), "missing (expected " + expected + ")");
  return *it;
}

}  // namespace memfront
