#pragma once
// Exporting a measured configuration to where it will run: memfront's own
// config, a DeepSpeed JSON config, PyTorch FSDP2 arguments (a Python snippet),
// or a Slurm batch script. Every export carries provenance (results file,
// trial id, machine, measured figures), and a knob with no equivalent in the
// target is named in a comment there, never dropped silently.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/results.h"

namespace memfront {

enum class ExportFormat { memfront, deepspeed, fsdp, sbatch };
std::optional<ExportFormat> parse_export_format(std::string_view name);

struct ExportSource {
  std::filesystem::path results_file;  // as the user named it
  ResultsHeader header;                // its machine and study
};

// The text of the export (JSON for memfront/deepspeed; Python; bash).
std::string export_trial(const TrialRecord& record, ExportFormat format, const ExportSource& source);

}  // namespace memfront
