#include "gui/trial_table_model.h"

#include <QFileInfo>

#include <algorithm>
#include <cmath>

#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {

namespace {

// The status of a row, on any cell: what TrialFilterModel's status filter
// matches, wherever the status column is.
constexpr int kStatusRole = Qt::UserRole + 2;

// The metric an objective names ("-name" maximizes it).
std::string_view metric_of(const std::string& objective) {
  std::string_view name(objective);
  if (!name.empty() && name.front() == '-') name.remove_prefix(1);
  return name;
}

std::vector<std::optional<MetricRef>> resolve_objectives(const std::vector<std::string>& objectives) {
  std::vector<std::optional<MetricRef>> metrics;
  for (const std::string& objective : objectives) metrics.push_back(resolve_metric(metric_of(objective)).metric);
  return metrics;
}

}  // namespace

// How the model decides which knobs vary: per knob of the knob table, the
// value of the first trial and whether another trial's differs. Rows are only
// ever appended, so a knob that varies never stops varying, and knob columns
// only get added.
struct KnobTracker {
  struct Seen {
    KnobValue first;
    bool varies = false;
  };
  std::vector<Seen> knobs;  // in knob_table() order; empty until the first trial
};

TrialTableModel::TrialTableModel(const TrialStore& store, std::vector<std::string> objectives, QObject* parent)
    : QAbstractTableModel(parent), store_(store), objectives_(std::move(objectives)),
      objective_metrics_(resolve_objectives(objectives_)), tracker_(std::make_shared<KnobTracker>()) {
  rows_ = store_.trial_count();
  note_trials(0, rows_);
  knobs_ = varying_knobs();
  files_shown_ = store_.files().size() > 1;
  connect(&store_, &TrialStore::trials_appended, this, &TrialTableModel::append);
}

int TrialTableModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : rows_; }

int TrialTableModel::columnCount(const QModelIndex& parent) const {
  if (parent.isValid()) return 0;
  return first_objective_column() + static_cast<int>(objectives_.size() + knobs_.size());
}

int TrialTableModel::first_objective_column() const { return files_shown_ ? 3 : 2; }

QVariant TrialTableModel::data(const QModelIndex& index, int role) const {
  if (!checkIndex(index, CheckIndexOption::IndexIsValid)) return {};
  const int row = index.row();
  const TrialRecord& record = store_.trial(row);
  if (role == kTrialRole) return row;
  if (role == kStatusRole) return QString::fromUtf8(to_string(record.status).data(), static_cast<int>(to_string(record.status).size()));
  if (role != Qt::DisplayRole && role != kSortRole && role != Qt::ToolTipRole) return {};

  int column = index.column();
  if (files_shown_) {
    if (column == 0) {
      const QString& path = store_.files()[store_.file_of(row)].path;
      return role == Qt::ToolTipRole ? path : QFileInfo(path).fileName();
    }
    --column;
  }
  if (column == 0) return QString::fromStdString(record.id);
  if (column == 1) return data(index, kStatusRole);
  column -= 2;
  if (column < static_cast<int>(objectives_.size())) {
    const std::optional<MetricRef>& metric = objective_metrics_[column];
    const std::optional<double> value = metric ? (*metric)(record) : std::nullopt;
    if (!value) return role == kSortRole ? QVariant() : QVariant(QString());
    if (role == kSortRole) return *value;
    return QString::fromStdString(format_metric_value(metric->unit, *value));
  }
  column -= static_cast<int>(objectives_.size());
  const ConfigKnob* knob = find_knob(knobs_[column]);
  if (!knob) return {};
  const KnobValue value = knob->read(record.config);
  if (role == kSortRole) {
    if (const std::optional<double> number = knob_number(value)) return *number;
  }
  return QString::fromStdString(knob_text(value));
}

QVariant TrialTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole || section < 0) return {};
  if (orientation == Qt::Vertical) return section < rows_ ? QVariant(section + 1) : QVariant();
  if (section >= columnCount()) return {};
  if (files_shown_) {
    if (section == 0) return tr("file");
    --section;
  }
  if (section == 0) return tr("id");
  if (section == 1) return tr("status");
  section -= 2;
  if (section < static_cast<int>(objectives_.size())) {
    const std::string& objective = objectives_[section];
    const QString name = QString::fromStdString(std::string(metric_of(objective)));
    return objective.starts_with('-') ? name + QStringLiteral(" (max)") : name;
  }
  return QString::fromStdString(knobs_[section - objectives_.size()]);
}

void TrialTableModel::set_objectives(std::vector<std::string> objectives) {
  beginResetModel();
  objectives_ = std::move(objectives);
  objective_metrics_ = resolve_objectives(objectives_);
  endResetModel();
}

void TrialTableModel::note_trials(int first, int count) {
  KnobTracker& tracker = *tracker_;
  const std::vector<ConfigKnob>& table = knob_table();
  for (int row = first; row < first + count; ++row) {
    const Config& config = store_.trial(row).config;
    if (tracker.knobs.empty()) {
      for (const ConfigKnob& knob : table) tracker.knobs.push_back({knob.read(config)});
      continue;
    }
    for (size_t k = 0; k < table.size(); ++k) {
      KnobTracker::Seen& seen = tracker.knobs[k];
      if (!seen.varies && table[k].read(config) != seen.first) seen.varies = true;
    }
  }
}

std::vector<std::string> TrialTableModel::varying_knobs() const {
  std::vector<std::string> knobs;
  for (size_t k = 0; k < tracker_->knobs.size(); ++k) {
    if (tracker_->knobs[k].varies) knobs.emplace_back(knob_table()[k].path);
  }
  std::sort(knobs.begin(), knobs.end());
  return knobs;
}

void TrialTableModel::append(int first, int count) {
  // Rows first, with the columns as they are; then each new column in turn.
  beginInsertRows({}, rows_, first + count - 1);
  rows_ = first + count;
  endInsertRows();

  if (!files_shown_ && store_.files().size() > 1) {
    beginInsertColumns({}, 0, 0);
    files_shown_ = true;
    endInsertColumns();
  }
  note_trials(first, count);
  const std::vector<std::string> knobs = varying_knobs();
  // Knobs stay sorted, and the old ones are a subset of the new: insert each
  // new one where it sorts.
  const int base = first_objective_column() + static_cast<int>(objectives_.size());
  for (const std::string& knob : knobs) {
    const auto at = std::lower_bound(knobs_.begin(), knobs_.end(), knob);
    if (at != knobs_.end() && *at == knob) continue;
    const int column = base + static_cast<int>(at - knobs_.begin());
    beginInsertColumns({}, column, column);
    knobs_.insert(at, knob);
    endInsertColumns();
  }
}

TrialFilterModel::TrialFilterModel(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(TrialTableModel::kSortRole);
}

void TrialFilterModel::set_text(const QString& text) {
  text_ = text;
  invalidateFilter();
}

void TrialFilterModel::set_status(const QString& status) {
  status_ = status;
  invalidateFilter();
}

void TrialFilterModel::set_allowed_trials(std::vector<int> trials) {
  allowed_.clear();
  if (!trials.empty()) {
    allowed_.assign(static_cast<size_t>(*std::max_element(trials.begin(), trials.end())) + 1, false);
    for (int trial : trials) {
      if (trial >= 0) allowed_[static_cast<size_t>(trial)] = true;
    }
  }
  invalidateFilter();
}

bool TrialFilterModel::filterAcceptsRow(int source_row, const QModelIndex& source_parent) const {
  const QAbstractItemModel* source = sourceModel();
  const QModelIndex first = source->index(source_row, 0, source_parent);
  if (!allowed_.empty()) {
    const int trial = source->data(first, TrialTableModel::kTrialRole).toInt();
    if (trial < 0 || static_cast<size_t>(trial) >= allowed_.size() || !allowed_[static_cast<size_t>(trial)]) {
      return false;
    }
  }
  if (!status_.isEmpty() && source->data(first, kStatusRole).toString() != status_) return false;
  if (text_.isEmpty()) return true;
  const int columns = source->columnCount(source_parent);
  for (int column = 0; column < columns; ++column) {
    const QString cell = source->data(source->index(source_row, column, source_parent), Qt::DisplayRole).toString();
    if (cell.contains(text_, Qt::CaseInsensitive)) return true;
  }
  return false;
}

bool TrialFilterModel::lessThan(const QModelIndex& left, const QModelIndex& right) const {
  const QVariant a = left.data(TrialTableModel::kSortRole);
  const QVariant b = right.data(TrialTableModel::kSortRole);
  // Missing values sort after every present one, whatever their type.
  if (!a.isValid() || !b.isValid()) return a.isValid() && !b.isValid();
  const bool a_number = a.typeId() == QMetaType::Double;
  const bool b_number = b.typeId() == QMetaType::Double;
  if (a_number && b_number) {
    const double x = a.toDouble();
    const double y = b.toDouble();
    // NaN (a diverged loss) sorts last, like a missing value.
    if (std::isnan(x) || std::isnan(y)) return !std::isnan(x) && std::isnan(y);
    return x < y;
  }
  if (a_number != b_number) return a_number;  // numbers before text
  return QString::compare(a.toString(), b.toString(), Qt::CaseInsensitive) < 0;
}

}  // namespace memfront
