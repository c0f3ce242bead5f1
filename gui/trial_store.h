#pragma once
// TrialStore: the trials of one or more results files, as the viewer holds
// them. Files load off the GUI thread; a file that is still being written (a
// sweep in progress) can be watched, and the trials appended to it arrive
// without reopening. Malformed, truncated, empty or foreign files never stop
// the viewer: what could be read is kept, and each problem is one line that
// names the file, the line and what was wrong.
#include <QObject>
#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

#include "core/results.h"

class QFileSystemWatcher;

namespace memfront {

struct LoadedFile {
  QString path;
  ResultsHeader header;
  qint64 bytes_read = 0;  // where the next watched read starts (after the last complete line)
  int trials = 0;         // trials read from it so far
  int skipped = 0;        // lines that could not be read
  QStringList problems;   // one line each: "<file>:<line>: <what>"
};

class TrialStore : public QObject {
  Q_OBJECT
 public:
  explicit TrialStore(QObject* parent = nullptr);
  ~TrialStore() override;

  // Starts loading in a worker thread; the result arrives through
  // trials_appended / file_problem / loading_finished. Loading the same path
  // twice is ignored.
  void add_file(const QString& path);
  // Loads on the calling thread (tests, --render): returns when done.
  void add_file_now(const QString& path);
  // Watches every loaded file for appended trials.
  void set_watching(bool watching);
  bool loading() const;

  int trial_count() const { return static_cast<int>(trials_.size()); }
  const TrialRecord& trial(int index) const { return trials_[index].record; }
  int file_of(int index) const { return trials_[index].file; }
  const std::vector<LoadedFile>& files() const { return files_; }
  // The objectives of the first file whose study (study_spec) names them, else peak_mem,
  // step_time and loss_delta.
  std::vector<std::string> default_objectives() const;

 signals:
  void loading_started(const QString& path);
  void loading_finished(const QString& path);
  void trials_appended(int first, int count);
  void file_problem(const QString& path, const QString& message);

 private:
  struct Entry {
    TrialRecord record;
    int file;
  };
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<Entry> trials_;
  std::vector<LoadedFile> files_;
};

}  // namespace memfront
