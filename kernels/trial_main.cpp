// memfront-trial: runs one training trial and reports what it measured.
// Single rank:  memfront-trial --config c.json [--out r.json] [--trace t.json]
// Distributed:  mpirun -np W memfront-trial --config c.json --out r.json
//   (every rank trains its share; rank 0 prints the summary and writes the record)
// Exit status: 0 ok; 2 bad input (one line on stderr); 3 the run failed and the
// record says how (e.g. status "oom", or a rank that timed out).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/arena.h"
#include "core/error.h"
#include "core/exit_code.h"
#include "core/time_limits.h"
#include "kernels/mpi_session.h"
#include "kernels/trial.h"

namespace {

using namespace memfront;

// Every rank checks its own input before any collective, then all of them
// learn at once whether any rank rejected it: a rank that stopped alone would
// leave the others waiting forever in the first collective (its own
// MPI_Finalize included). Returns the message of the lowest rank that
// rejected its input ("rank R: ..." in a job of several ranks), if one did.
std::optional<std::string> rejection_of_any_rank(const MpiSession& mpi, const std::optional<std::string>& mine) {
  const std::vector<std::string> all = all_gather_text(mine ? "!" + *mine : std::string());
  for (size_t rank = 0; rank < all.size(); ++rank) {
    if (all[rank].empty()) continue;
    const std::string message = all[rank].substr(1);
    return mpi.world() > 1 ? "rank " + std::to_string(rank) + ": " + message : message;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(argc, argv);
  const bool is_root = mpi.rank() == 0;

  CLI::App app{"memfront-trial: run one measured training trial"};
  app.set_version_flag("--version", "memfront-trial " MEMFRONT_VERSION);
  std::string config_path, out_path, trace_path, mem_cap_text, crash_at;
  std::optional<int> steps, warmup, threads;
  double timeout_s = kDefaultCommTimeoutS;
  bool quiet = false, no_cupti = false, no_bind = false;
  app.add_option("--config", config_path, "trial config (JSON)")->required();
  app.add_option("--out", out_path, "write the trial record (JSON) here");
  app.add_option("--trace", trace_path,
                 "write a trace of the whole trial here (Chrome trace-event JSON; opens in ui.perfetto.dev)");
  app.add_option("--steps", steps, "timed optimizer steps (overrides train.steps)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first (overrides train.warmup)")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "BLAS threads per rank (overrides train.threads)")->check(CLI::PositiveNumber);
  app.add_option("--mem-cap", mem_cap_text, "emulated device memory per rank (e.g. 64MiB); exceeding it is status oom");
  app.add_option("--timeout", timeout_s, "seconds a rank waits for another before the trial fails (default " +
                                    std::to_string(static_cast<int>(kDefaultCommTimeoutS)) + ")")
      ->check(CLI::PositiveNumber);
  app.add_option("--crash", crash_at, "fault injection for testing: RANK:STEP exits that rank abruptly at that step");
  app.add_flag("--quiet", quiet, "print nothing but errors");
  app.add_flag("--no-cupti", no_cupti, "backend=cuda: run without the CUPTI probe (no kernel records or DRAM bytes)");
  app.add_flag("--no-bind", no_bind, "leave the ranks unbound (by default each gets cores of its own when there are enough)");

  // This rank's input: the command line, the config and whether this job
  // can run it. Nothing here talks to another rank.
  TrialOptions options;
  Config config;
  std::optional<std::string> rejected;
  try {
    app.parse(argc, argv);
    for (int i = 0; i < argc; ++i) options.command_line += (i ? " " : "") + std::string(argv[i]);
    options.out = out_path;
    options.trace = trace_path;
    options.cupti = !no_cupti;
    options.bind = !no_bind;
    options.comm_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    if (!mem_cap_text.empty()) {
      // 0 bytes would mean no cap at all: never what a cap that rounds to it meant.
      auto parsed = parse_bytes(mem_cap_text);
      if (!parsed || *parsed == 0) {
        throw InputError("--mem-cap: expected a byte size from 1 B to below 16 EiB (2^64 B), such as 512MiB or 2GB, "
                         "got '" + mem_cap_text + "'");
      }
      options.mem_cap_bytes = *parsed;
    }
    if (!crash_at.empty() && std::sscanf(crash_at.c_str(), "%d:%d", &options.crash_rank, &options.crash_step) != 2) {
      throw InputError("--crash: expected RANK:STEP, got '" + crash_at + "'");
    }
    config = load_config(config_path);
    if (steps) config.train.steps = *steps;
    if (warmup) config.train.warmup = *warmup;
    if (threads) config.train.threads = *threads;
    check_supported(config, config_path, mpi.world());
    options.config_source = config_path;
  } catch (const CLI::Success& e) {  // --help, --version
    return is_root ? app.exit(e) : 0;
  } catch (const CLI::ParseError& e) {
    rejected = e.what();
  } catch (const InputError& e) {
    rejected = e.what();
  }
  if (const auto rejection = rejection_of_any_rank(mpi, rejected)) {
    if (is_root) std::cerr << "memfront-trial: " << *rejection << "\n";
    return code(ExitCode::bad_input);
  }

  try {
    // Until the trial ends, the record on disk says it did not finish: a job
    // killed half-way leaves a truthful file, never a stale or missing one.
    // Atomic, not durable: a killed process is what it guards against; a
    // machine that crashes may leave no record, which launchers read as a
    // trial that did not finish too. The two fsyncs took 16 ms of a one-rank
    // trial's start here.
    if (is_root && !out_path.empty()) {
      write_record_file(out_path, unfinished_record(config, options), FileSync::atomic_only);
    }
    // No rank starts before that file exists: a rank that fails at once writes
    // its own record, which must not be overwritten by the placeholder.
    mpi.barrier();
    TrialRecord record = run_trial(config, options);
    if (!is_root) return 0;
    if (!out_path.empty()) write_record_file(out_path, record);
    if (!quiet) std::cout << format_summary(record);
    return code(record.status == TrialStatus::ok ? ExitCode::ok : ExitCode::trial_failed);
  } catch (const InputError& e) {
    // Input only the run can judge (the device, the data file): no record
    // is left for input found bad, so the placeholder goes. The other ranks
    // are past the agreement and would wait for this one: the job ends here.
    if (!out_path.empty()) {
      std::error_code ignored;
      std::filesystem::remove(out_path, ignored);
    }
    std::cerr << "memfront-trial: " << (mpi.world() > 1 ? "rank " + std::to_string(mpi.rank()) + ": " : "")
              << e.what() << "\n";
    if (mpi.world() > 1) MpiSession::abort(code(ExitCode::bad_input));
    return code(ExitCode::bad_input);
  } catch (const std::bad_alloc&) {
    // Host memory ran out: the trial's out-of-memory, as the arena's cap is,
    // recorded by the rank it happened on (as run_trial's failures are).
    const std::string error = "rank " + std::to_string(mpi.rank()) + ": out of host memory (an allocation failed)";
    std::cerr << "memfront-trial: " << error << "\n";
    if (!out_path.empty()) {
      TrialRecord record = unfinished_record(config, options);
      record.status = TrialStatus::oom;
      record.error = error;
      write_record_file(out_path, record);
    }
    if (mpi.world() > 1) MpiSession::abort(code(ExitCode::trial_failed));
    return code(ExitCode::trial_failed);
  } catch (const std::exception& e) {
    std::cerr << "memfront-trial: rank " << mpi.rank() << ": " << e.what() << "\n";
    if (mpi.world() > 1) MpiSession::abort(code(ExitCode::failure));
    return code(ExitCode::failure);
  }
}
