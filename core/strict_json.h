#pragma once
// Strict reading of a JSON object that memfront wrote (calibration files,
// predictions in results): every expected member present with its type,
// nothing else. Errors are InputError "<where>: <json pointer>: <what was
// expected>".
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace memfront {

class StrictObject {
 public:
  // `keys` are every member the object may have; any other is an error.
  StrictObject(const nlohmann::json& value, std::string_view where, std::string pointer,
               std::initializer_list<const char*> keys);

  double number(const char* key) const;
  double positive(const char* key) const;      // finite and > 0
  double non_negative(const char* key) const;  // finite and >= 0
  uint64_t count(const char* key) const;       // an integer >= 0
  std::optional<double> optional_non_negative(const char* key) const;  // null, or as non_negative
  bool boolean(const char* key) const;
  std::string text(const char* key) const;
  StrictObject object(const char* key, std::initializer_list<const char*> keys) const;

  std::string at(const std::string& key) const { return pointer_ + "/" + key; }
  [[noreturn]] void fail(const std::string& pointer, const std::string& what) const;

 private:
  const nlohmann::json& member(const char* key, const std::string& expected) const;

  const nlohmann::json& value_;
  std::string_view where_;
  std::string pointer_;
};

}  // namespace memfront
