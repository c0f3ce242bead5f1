// SweepLock: flock on <results>.lock, whose text says who holds it and which
// trial runs:
//   sweep <pid>
//   trial <pid> <start ticks>
// The text is rewritten in one pwrite, then cut to its length: a sweep killed
// in between leaves an older trial line, which the identity check then finds
// gone (or ends, if it still runs: it is that sweep's). A sweep that ends
// removes the file while it still holds the lock.
#include "tuner/sweep_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace memfront {

namespace fs = std::filesystem;

fs::path SweepLock::path_of(const fs::path& results) {
  fs::path path = results;
  path += ".lock";
  return path;
}

namespace {

// The outermost of `folder` and its parents that does not exist yet ("" when it exists).
fs::path outermost_missing(const fs::path& folder) {
  fs::path missing;
  for (fs::path at = folder; !at.empty() && !fs::exists(at); at = at.parent_path()) {
    missing = at;
    if (at == at.parent_path()) break;
  }
  return missing;
}

// Whether the open file is the one now at `path` (not one its holder removed
// after it was opened here).
bool is_file_at(int fd, const fs::path& path) {
  struct stat opened {}, named {};
  return ::fstat(fd, &opened) == 0 && ::stat(path.c_str(), &named) == 0 && opened.st_dev == named.st_dev &&
         opened.st_ino == named.st_ino;
}

}  // namespace

SweepLock::SweepLock(const fs::path& results, std::ostream& log) : path_(path_of(results)) {
  if (path_.has_parent_path()) {
    made_folder_ = outermost_missing(path_.parent_path());
    fs::create_directories(path_.parent_path());
  }
  char text[256] = {};
  // A sweep that ends removes its lock file: one opened just before that is
  // no lock at all, and is opened again.
  for (;;) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      const int error = errno;
      remove_made_folders();
      throw std::runtime_error("cannot open " + path_.string() + ": " + std::strerror(error));
    }
    const ssize_t got = ::pread(fd_, text, sizeof text - 1, 0);
    const std::string left = got > 0 ? std::string(text, static_cast<size_t>(got)) : std::string();
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      std::string holder = left.substr(0, left.find('\n'));
      throw std::runtime_error(path_.string() + ": another memfront " + (holder.empty() ? "sweep" : holder) +
                               " runs on " + results.string() + "; wait for it, or stop it");
    }
    if (is_file_at(fd_, path_)) break;
    ::close(fd_);
  }
  // Whatever an earlier sweep recorded is read again now that it is ours.
  const ssize_t again = ::pread(fd_, text, sizeof text - 1, 0);
  std::istringstream lines(again > 0 ? std::string(text, static_cast<size_t>(again)) : std::string());
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string kind;
    ProcessIdentity trial;
    if (!(words >> kind >> trial.pid >> trial.start_ticks) || kind != "trial" || trial.pid <= 0) continue;
    if (const int left_running = end_session(trial, kTermGraceSeconds); left_running > 0) {
      log << "memfront: ended " << left_running << " processes of a trial an earlier sweep left running (session "
          << trial.pid << ")\n";
    }
  }
  write("sweep " + std::to_string(::getpid()) + "\n");
}

SweepLock::~SweepLock() {
  // Removed while still locked, so that no other sweep holds this file in
  // between; closing then releases the lock.
  ::unlink(path_.c_str());
  ::close(fd_);
  remove_made_folders();
}

void SweepLock::remove_made_folders() {
  if (made_folder_.empty()) return;
  // Innermost first; a folder that holds anything (the results file) stays, and so do its parents.
  std::error_code not_empty;
  for (fs::path folder = path_.parent_path(); !not_empty; folder = folder.parent_path()) {
    fs::remove(folder, not_empty);
    if (folder == made_folder_) break;
  }
}

void SweepLock::running(const ProcessIdentity& trial) {
  write("sweep " + std::to_string(::getpid()) + "\ntrial " + std::to_string(trial.pid) + " " +
        std::to_string(trial.start_ticks) + "\n");
}

void SweepLock::ended() { write("sweep " + std::to_string(::getpid()) + "\n"); }

void SweepLock::write(const std::string& text) {
  if (!write_text(text)) throw std::runtime_error("cannot write " + path_.string() + ": " + std::strerror(errno));
}

bool SweepLock::write_text(const std::string& text) {
  return ::pwrite(fd_, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()) &&
         ::ftruncate(fd_, static_cast<off_t>(text.size())) == 0;
}

}  // namespace memfront
