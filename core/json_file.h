#pragma once
// Reading JSON documents that people write (configs, studies, calibrations):
// a failure is an InputError of one line that names the file and, for a
// syntax error, where in it.
#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

namespace memfront {

// "<source>: not valid JSON: parse error at line 3, column 7: ..." on bad text.
nlohmann::json parse_json_text(std::string_view text, std::string_view source);

// "<path>: cannot open <what>" when unreadable, else as parse_json_text.
nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what);

}  // namespace memfront
