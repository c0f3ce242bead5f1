#pragma once
// Default time limits that several programs share: the study's launcher, the
// local and Slurm launchers, memfront-trial and memfront-calibrate.

namespace memfront {

// Wall time of one trial run before its process group is stopped (a study's
// launcher.timeout_s when it gives none).
inline constexpr double kDefaultTrialTimeoutS = 300;

// The longest a rank waits for another before its collective fails
// (memfront-trial --timeout). The launchers pass at most this, and at most half
// the trial's timeout, so that a stuck collective fails inside the trial, with
// a record saying so, before the launcher kills it.
inline constexpr double kDefaultCommTimeoutS = 60;

}  // namespace memfront
