#pragma once
// One trial: build the model for a config, train it for warmup + steps
// optimizer steps while measuring, evaluate the held-out loss, and return the
// trial record (core/results.h). memfront-trial is a thin main around this.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/results.h"

namespace memfront {

struct TrialOptions {
  uint64_t mem_cap_bytes = 0;  // emulated device size; 0 = unlimited
  std::string command_line;    // for provenance
};

// Throws InputError when the config asks for something this build does not run
// yet (distributed strategies, compression, CUDA): named by JSON pointer.
void check_supported(const Config& config, std::string_view source);

// Runs the trial. A run failure (out of memory under the cap, a non-finite loss)
// is not thrown: it is the record's status, with what was measured until then.
TrialRecord run_trial(const Config& config, const TrialOptions& options);

// The short human summary memfront-trial prints.
std::string format_summary(const TrialRecord& record);

}  // namespace memfront
