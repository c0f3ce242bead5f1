#include "core/json_file.h"

#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"

namespace memfront {

nlohmann::json parse_json_text(std::string_view text, std::string_view source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann's message carries the position; keep it, behind our file name.
    const std::string what = e.what();
    const size_t at = what.find("parse error");
    throw InputError(std::string(source) + ": not valid JSON: " + (at == std::string::npos ? what : what.substr(at)));
  }
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) throw InputError(path.string() + ": cannot open " + std::string(what));
  std::stringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path.string());
}

}  // namespace memfront
