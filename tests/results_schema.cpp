#include "tests/results_schema.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "core/json_file.h"
#include "core/jsonl.h"

namespace memfront {
namespace {

// Parsed once; valijson's Schema is neither copied nor moved.
struct LoadedSchema {
  valijson::Schema schema;
  LoadedSchema() {
    const nlohmann::json document =
        read_json_file(std::filesystem::path(MEMFRONT_SOURCE_DIR) / "results" / "schema.json", "results schema");
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    parser.populateSchema(valijson::adapters::NlohmannJsonAdapter(document), schema);
  }
};

const valijson::Schema& results_schema() {
  static const LoadedSchema loaded;
  return loaded.schema;
}

}  // namespace

std::string results_schema_errors(const nlohmann::json& line) {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  if (validator.validate(results_schema(), valijson::adapters::NlohmannJsonAdapter(line), &results)) return "";
  std::string errors;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    std::string where;
    for (const std::string& part : error.context) where += part;
    errors += where + ": " + error.description + "\n";
  }
  return errors;
}

std::string results_schema_errors_in_file(const std::filesystem::path& results_file) {
  const std::string text = read_text_file(results_file, "results file");
  const JsonlText lines = split_jsonl(text);
  std::string errors;
  for (const JsonlLine& line : lines.lines) {
    if (is_blank_line(line.text)) continue;
    const std::string where = results_file.string() + ":" + std::to_string(line.number);
    const std::string found = results_schema_errors(parse_json_text(line.text, where, line.number));
    std::istringstream each(found);
    for (std::string error; std::getline(each, error);) errors += where + ": " + error + "\n";
  }
  return errors;
}

ResultsFile read_checked_results(const std::filesystem::path& results_file) {
  EXPECT_EQ(results_schema_errors_in_file(results_file), "") << "results/schema.json rejects lines of " << results_file;
  return read_results(results_file);
}

}  // namespace memfront
