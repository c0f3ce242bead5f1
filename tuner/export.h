#pragma once
// Exporting a measured configuration to where it will run: memfront's own
// config, a DeepSpeed JSON config, PyTorch FSDP2 arguments (a Python snippet),
// or a Slurm batch script. Every export carries provenance (results file,
// trial id, machine, measured figures), and a knob with no equivalent in the
// target is named in a comment there, never dropped silently.
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/results.h"

namespace memfront {

enum class ExportFormat { memfront, deepspeed, fsdp2, sbatch };

// Each format's name, as `memfront export --format` and the viewer's export
// dialog spell it, and the suffix of the file it makes. Listed in enum order.
struct ExportFormatName {
  ExportFormat format;
  std::string_view name;
  std::string_view suffix;
};
inline constexpr std::array<ExportFormatName, 4> kExportFormats = {{
    {ExportFormat::memfront, "memfront", "json"},
    {ExportFormat::deepspeed, "deepspeed", "json"},
    {ExportFormat::fsdp2, "fsdp2", "py"},
    {ExportFormat::sbatch, "sbatch", "sh"},
}};
constexpr const ExportFormatName& export_format_name(ExportFormat format) {
  return kExportFormats[static_cast<size_t>(format)];
}
constexpr std::string_view to_string(ExportFormat format) { return export_format_name(format).name; }

// The format a name spells (also "fsdp", fsdp2's earlier name).
std::optional<ExportFormat> parse_export_format(std::string_view name);
// "memfront, deepspeed, fsdp2 or sbatch": the names, for help and errors.
std::string export_format_list();
// The format a name spells; an unknown name throws InputError
// "<where>: unknown export format 'slurm' (expected memfront, deepspeed, fsdp2 or sbatch)".
ExportFormat export_format_named(std::string_view name, std::string_view where);

struct ExportSource {
  std::filesystem::path results_file;  // as the user named it
  ResultsHeader header;                // its machine and study
};

// The text of the export (JSON for memfront/deepspeed; Python; bash).
std::string export_trial(const TrialRecord& record, ExportFormat format, const ExportSource& source);

}  // namespace memfront
