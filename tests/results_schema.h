#pragma once
// results/schema.json, checked by a maintained JSON Schema validator
// (valijson, draft 7 rules with strict types, so that 1e6 is not an integer):
// every header and record the tests write is held to it, so the schema and
// what memfront writes cannot drift apart.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/results.h"

namespace memfront {

// "" when `line` (a header or a trial record, as one line of a results file)
// is valid; else one line per error: "<where in the line>: <what>".
std::string results_schema_errors(const nlohmann::json& line);

// The errors of every line of a results file, each prefixed "<file>:<line>: ";
// "" when every line is valid. A torn last line is left out, as readers do.
std::string results_schema_errors_in_file(const std::filesystem::path& results_file);

// read_results, after adding a test failure for every line of the file that
// the schema rejects: what the tests' sweeps write is held to the schema.
ResultsFile read_checked_results(const std::filesystem::path& results_file);

}  // namespace memfront
