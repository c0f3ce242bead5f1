#include "gui/trial_store.h"

#include <QFileInfo>
#include <QFileSystemWatcher>
#include <QFutureWatcher>
#include <QSet>
#include <QtConcurrent/QtConcurrentRun>

#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include "tuner/sweep.h"

namespace memfront {

namespace {

// The file's identity: a file replaced by a rename (a new sweep writing the
// same name) has another inode, and must be read again from the start.
ino_t inode_of(const QString& path) {
  struct stat info {};
  return ::stat(QFile::encodeName(path).constData(), &info) == 0 ? info.st_ino : 0;
}

}  // namespace

struct TrialStore::Impl {
  // What the store needs per file beyond LoadedFile, index for index.
  struct FileState {
    bool header_read = false;
    ino_t inode = 0;
    std::unordered_set<std::string> ids;  // trial ids read, so a re-read adds only new ones
  };
  std::vector<FileState> states;
  QSet<QString> in_flight;  // absolute paths being loaded in a worker
  QFileSystemWatcher* watcher = nullptr;
  bool watching = false;

  // Takes in what a scan of file `index` read: its trials, problems and where
  // the next read starts. `from_start`: the scan read the header too.
  static void apply_scan(TrialStore& store, int index, ResultsScan scan, bool from_start);
  // The watcher saw `path` change: read what was appended, or all of it again.
  static void reread(TrialStore& store, const QString& path);
};

TrialStore::TrialStore(QObject* parent) : QObject(parent), impl_(std::make_unique<Impl>()) {}

// Pending loads deliver through QFutureWatchers that are children of this
// object, so they die with it and nothing arrives afterwards.
TrialStore::~TrialStore() = default;

bool TrialStore::loading() const { return !impl_->in_flight.isEmpty(); }

namespace {

QString absolute(const QString& path) { return QFileInfo(path).absoluteFilePath(); }

}  // namespace

void TrialStore::add_file(const QString& path) {
  const QString file = absolute(path);
  if (impl_->in_flight.contains(file)) return;
  for (const LoadedFile& loaded : files_) {
    if (loaded.path == file) return;
  }
  impl_->in_flight.insert(file);
  emit loading_started(file);
  auto* watcher = new QFutureWatcher<ResultsScan>(this);
  connect(watcher, &QFutureWatcher<ResultsScan>::finished, this, [this, watcher, file] {
    impl_->in_flight.remove(file);
    // A synchronous add_file_now of the same path may have won the race.
    const bool loaded =
        std::any_of(files_.begin(), files_.end(), [&](const LoadedFile& f) { return f.path == file; });
    if (!loaded) {
      files_.push_back(LoadedFile{file, {}, 0, 0, 0, {}});
      impl_->states.emplace_back();
      Impl::apply_scan(*this, static_cast<int>(files_.size()) - 1, watcher->result(), true);
    }
    watcher->deleteLater();
    emit loading_finished(file);
  });
  watcher->setFuture(QtConcurrent::run([file] { return scan_results(QFile::encodeName(file).toStdString()); }));
}

void TrialStore::add_file_now(const QString& path) {
  const QString file = absolute(path);
  for (const LoadedFile& loaded : files_) {
    if (loaded.path == file) return;
  }
  emit loading_started(file);
  files_.push_back(LoadedFile{file, {}, 0, 0, 0, {}});
  impl_->states.emplace_back();
  Impl::apply_scan(*this, static_cast<int>(files_.size()) - 1, scan_results(QFile::encodeName(file).toStdString()), true);
  emit loading_finished(file);
}

void TrialStore::Impl::apply_scan(TrialStore& store, int file_index, ResultsScan scan, bool from_start) {
  Impl& impl = *store.impl_;
  LoadedFile& file = store.files_[file_index];
  FileState& state = impl.states[file_index];
  if (from_start) {
    // The header was read when the scan got past line 1.
    state.header_read = scan.bytes_consumed > 0;
    if (state.header_read) file.header = scan.file.header;
    state.inode = inode_of(file.path);
  }
  file.bytes_read = static_cast<qint64>(scan.bytes_consumed);
  file.skipped += scan.skipped;

  const int first = store.trial_count();
  for (TrialRecord& record : scan.file.trials) {
    if (!state.ids.insert(record.id).second) continue;
    store.trials_.push_back(Entry{std::move(record), file_index});
  }
  const int added = store.trial_count() - first;
  file.trials += added;

  QStringList problems;
  for (const std::string& problem : scan.problems) problems << QString::fromStdString(problem);
  // While watching, an incomplete last line is a line still being written;
  // only a file read once has really lost it.
  if (scan.file.truncated_tail && !impl.watching) problems << QString::fromStdString(*scan.file.truncated_tail);
  file.problems << problems;

  const QString path = file.path;  // `file` may move if a slot adds files
  if (added > 0) emit store.trials_appended(first, added);
  for (const QString& problem : problems) emit store.file_problem(path, problem);
  if (impl.watching && impl.watcher && !impl.watcher->files().contains(path)) impl.watcher->addPath(path);
}

void TrialStore::set_watching(bool watching) {
  impl_->watching = watching;
  if (!watching) {
    delete impl_->watcher;
    impl_->watcher = nullptr;
    return;
  }
  if (!impl_->watcher) {
    impl_->watcher = new QFileSystemWatcher(this);
    connect(impl_->watcher, &QFileSystemWatcher::fileChanged, this,
            [this](const QString& path) { Impl::reread(*this, path); });
  }
  for (const LoadedFile& file : files_) {
    if (!impl_->watcher->files().contains(file.path)) impl_->watcher->addPath(file.path);
  }
}

void TrialStore::Impl::reread(TrialStore& store, const QString& path) {
  auto& files = store.files_;
  Impl& impl = *store.impl_;
  const auto found = std::find_if(files.begin(), files.end(), [&](const LoadedFile& f) { return f.path == path; });
  if (found == files.end()) return;
  const int index = static_cast<int>(found - files.begin());
  FileState& state = impl.states[index];
  // A replaced file (rename over it) drops out of the watcher: watch the new one.
  if (!impl.watcher->files().contains(path) && QFileInfo::exists(path)) impl.watcher->addPath(path);

  const QFileInfo info(path);
  if (!info.exists()) return;  // between a remove and the new file's creation
  const bool replaced = inode_of(path) != state.inode || info.size() < found->bytes_read;
  if (replaced) {
    // Read it again from the start; the trials already held stay, and only
    // ids not seen before in this file are added.
    emit store.file_problem(path, path + ": the file was replaced or truncated; read again from the start");
    state.inode = inode_of(path);
    state.header_read = false;
    found->bytes_read = 0;
  }
  if (!state.header_read) {
    apply_scan(store, index, scan_results(QFile::encodeName(path).toStdString()), true);
    return;
  }
  apply_scan(store, index,
             scan_results(QFile::encodeName(path).toStdString(), static_cast<uint64_t>(found->bytes_read),
                          found->header),
             false);
}

std::vector<std::string> TrialStore::default_objectives() const {
  // Files load in parallel and finish in any order, and a broken one has no
  // study: the first file that names objectives decides.
  for (const LoadedFile& file : files_) {
    std::vector<std::string> objectives;
    for (const Objective& objective : recorded_objectives(file.header)) {
      // The front's convention for a maximized objective: a leading '-'.
      objectives.push_back((objective.goal == Goal::maximize ? "-" : "") + objective.metric);
    }
    if (!objectives.empty()) return objectives;
  }
  return {"peak_mem", "step_time", "loss_delta"};
}

}  // namespace memfront
