#pragma once
// The table of trials (Qt model/view): one row per trial of the store, in
// store order; columns for the file, id, status, the objectives and the knobs
// that vary among the trials. TrialFilterModel sorts and filters it by text
// (any column) and by status. Both pass QAbstractItemModelTester, and stay
// smooth for 100k rows (data() computes nothing heavy per call).
#include <QAbstractTableModel>
#include <QSortFilterProxyModel>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/metric_registry.h"

namespace memfront {

class TrialStore;
struct KnobTracker;

class TrialTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  // Listens to the store's trials_appended and inserts rows as they arrive.
  TrialTableModel(const TrialStore& store, std::vector<std::string> objectives, QObject* parent = nullptr);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

  void set_objectives(std::vector<std::string> objectives);
  // Qt::UserRole on any cell of a row: the trial's index in the store.
  static constexpr int kTrialRole = Qt::UserRole;
  // Qt::UserRole + 1: the raw sortable value (double or string).
  static constexpr int kSortRole = Qt::UserRole + 1;

 private:
  void append(int first, int count);  // the store's trials_appended
  void note_trials(int first, int count);
  std::vector<std::string> varying_knobs() const;
  int first_objective_column() const;

  const TrialStore& store_;
  std::vector<std::string> objectives_;
  // objectives_ resolved once (sorting reads them for every comparison); an
  // unknown name has no metric and shows empty cells.
  std::vector<std::optional<MetricRef>> objective_metrics_;
  std::vector<std::string> knobs_;  // config paths that vary, sorted
  int rows_ = 0;
  bool files_shown_ = false;        // the file column, once there is more than one file
  std::shared_ptr<KnobTracker> tracker_;
};

class TrialFilterModel : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  explicit TrialFilterModel(QObject* parent = nullptr);
  void set_text(const QString& text);      // case-insensitive, any column
  void set_status(const QString& status);  // "" = any
  // Limits the rows to these store indices (brushing in parallel
  // coordinates); empty = no limit.
  void set_allowed_trials(std::vector<int> trials);

 protected:
  bool filterAcceptsRow(int source_row, const QModelIndex& source_parent) const override;
  bool lessThan(const QModelIndex& left, const QModelIndex& right) const override;

 private:
  QString text_, status_;
  std::vector<bool> allowed_;  // indexed by store trial; empty = all
};

}  // namespace memfront
