#pragma once
// The lock of a local sweep on its results file (<results>.lock), which also
// records the trial it is running, so that a later sweep can end what a
// killed one left behind.
//
// A trial's processes normally end with their sweep, however it ends: its
// watchdog (tuner/process.h) sees to that. The record here covers the rest:
// a watchdog killed too (a `kill -9` of every memfront process, the
// out-of-memory killer). The next sweep on the file ends every process of
// each recorded trial's session that is still the same process (pid and
// start time) and says so.
//
// A sweep that ends, however it ends short of a kill (a finished study, bad
// input, an interrupt), removes the lock file and the folders it made for it:
// only a killed sweep leaves anything behind, and what it leaves is needed.
#include <filesystem>
#include <ostream>
#include <string>

#include "tuner/process.h"

namespace memfront {

class SweepLock {
 public:
  // Takes the lock, then ends the trials an earlier sweep left running
  // (one line each on `log`). std::runtime_error naming the holder's pid when
  // another sweep holds it.
  SweepLock(const std::filesystem::path& results, std::ostream& log);
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;
  ~SweepLock();

  static std::filesystem::path path_of(const std::filesystem::path& results);

  // The trial now running (the leader of its session), recorded until ended().
  void running(const ProcessIdentity& trial);
  void ended();

 private:
  void write(const std::string& text);       // throws when it cannot
  bool write_text(const std::string& text);  // false when it cannot
  void remove_made_folders();                // those that are empty

  std::filesystem::path path_;
  std::filesystem::path made_folder_;  // the outermost folder made for the lock file, if any
  int fd_ = -1;
};

}  // namespace memfront
