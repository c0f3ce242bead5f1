#pragma once
// One trial: build the model for a config, train it for warmup + steps
// optimizer steps while measuring, evaluate the held-out loss, and return the
// trial record (core/results.h). memfront-trial is a thin main around this.
//
// With config.world > 1 every rank of an MPI job runs run_trial: each trains
// its share of the data and holds its share of the model (shard.strategy), and
// rank 0 gathers what every rank measured into one record. A rank that fails
// (out of memory under the cap, a collective that times out, a non-finite
// loss) writes a record saying so and ends the whole job, so a trial never
// hangs and never leaves a record that claims success.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/results.h"
#include "core/time_limits.h"

namespace memfront {

struct TrialOptions {
  uint64_t mem_cap_bytes = 0;  // emulated device size per rank; 0 = unlimited
  std::string command_line;    // for provenance
  std::string config_source = "<config>";  // the config's file, for errors
  std::filesystem::path out;   // record file; written by rank 0, or by a failing rank
  // Trace file (Chrome trace-event JSON, one process per rank), written by
  // rank 0; empty: no trace is recorded at all.
  std::filesystem::path trace;
  std::chrono::milliseconds comm_timeout{static_cast<int64_t>(kDefaultCommTimeoutS * 1000)};  // longest wait for another rank
  // backend=cuda: run the CUPTI probe (activity records of the whole trial,
  // DRAM bytes per kernel on the last warmup step) into the record's gpu field.
  bool cupti = true;
  // Bind each rank to cores of its own when its machine has enough (core/timing.h).
  bool bind = true;
  // Fault injection, for testing failure handling: rank `crash_rank` exits
  // abruptly (no MPI_Finalize) at the start of step `crash_step`.
  int crash_rank = -1;
  int crash_step = -1;
};

// Throws InputError when the config asks for a world that the MPI job does not
// have: named by JSON pointer. (A backend this build or machine cannot run is
// refused by run_trial, which is where the device is opened.)
void check_supported(const Config& config, std::string_view source, int mpi_world);

// Runs the trial on this rank. Returns the record: on rank 0 the whole trial's,
// on other ranks their own part. Run failures are the record's status, not
// exceptions; with world > 1 they end the job after writing the record.
TrialRecord run_trial(const Config& config, const TrialOptions& options);

// A record that says the trial did not finish, written before it starts, so
// that a job killed half-way leaves a truthful file.
TrialRecord unfinished_record(const Config& config, const TrialOptions& options);

// The short human summary memfront-trial prints.
std::string format_summary(const TrialRecord& record);

}  // namespace memfront
