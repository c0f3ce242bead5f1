// memfront-trial: runs one training trial on this process and reports what it
// measured. Exit status: 0 ok; 2 bad input (one line on stderr); 3 the run
// failed and the record says how (e.g. status "oom").
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/arena.h"
#include "core/error.h"
#include "kernels/trial.h"

int main(int argc, char** argv) {
  using namespace memfront;
  CLI::App app{"memfront-trial: run one measured training trial"};
  std::string config_path, out_path;
  std::optional<int> steps, warmup, threads;
  std::string mem_cap_text;
  bool quiet = false;
  app.add_option("--config", config_path, "trial config (JSON)")->required();
  app.add_option("--out", out_path, "write the trial record (JSON) here");
  app.add_option("--steps", steps, "timed optimizer steps (overrides train.steps)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first (overrides train.warmup)")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "BLAS threads (overrides train.threads)")->check(CLI::PositiveNumber);
  app.add_option("--mem-cap", mem_cap_text, "emulated device memory (e.g. 64MiB); exceeding it is status oom");
  app.add_flag("--quiet", quiet, "print nothing but errors");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  uint64_t mem_cap = 0;
  if (!mem_cap_text.empty()) {
    auto parsed = parse_bytes(mem_cap_text);
    if (!parsed) {
      std::cerr << "memfront-trial: --mem-cap: expected a byte size such as 512MiB or 2GB, got '" << mem_cap_text
                << "'\n";
      return 2;
    }
    mem_cap = *parsed;
  }

  try {
    Config config = load_config(config_path);
    if (steps) config.train.steps = *steps;
    if (warmup) config.train.warmup = *warmup;
    if (threads) config.train.threads = *threads;
    check_supported(config, config_path);

    TrialRecord record = run_trial(config, {mem_cap, command_line});
    if (!out_path.empty()) write_record_file(out_path, record);
    if (!quiet) std::cout << format_summary(record);
    return record.status == TrialStatus::ok ? 0 : 3;
  } catch (const InputError& e) {
    std::cerr << "memfront-trial: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "memfront-trial: " << e.what() << "\n";
    return 1;
  }
}
