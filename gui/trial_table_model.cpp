#include "gui/trial_table_model.h"

#include <QFileInfo>

#include <algorithm>
#include <cmath>
#include <unordered_map>

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

// Every leaf of a config as (dotted path, JSON node), e.g. shard.strategy.
void collect_leaves(const nlohmann::json& node, const std::string& prefix,
                    std::vector<std::pair<std::string, const nlohmann::json*>>& leaves) {
  if (node.is_object() && !node.empty()) {
    for (const auto& [key, child] : node.items()) {
      collect_leaves(child, prefix.empty() ? key : prefix + "." + key, leaves);
    }
    return;
  }
  leaves.emplace_back(prefix, &node);
}

const nlohmann::json* node_at(const nlohmann::json& config, const std::string& path) {
  const nlohmann::json* node = &config;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = std::min(path.find('.', start), path.size());
    if (!node->is_object()) return nullptr;
    const auto found = node->find(path.substr(start, dot - start));
    if (found == node->end()) return nullptr;
    node = &*found;
    start = dot + 1;
  }
  return node;
}

QString knob_text(const nlohmann::json& value) {
  if (value.is_string()) return QString::fromStdString(value.get<std::string>());
  return QString::fromStdString(value.dump());
}

}  // namespace

// How the model decides which config paths vary: per path, the first value
// seen and on how many trials it appeared. A path varies once a trial has a
// different value, or once some trial lacks it. Rows are only ever appended,
// so a path that varies never stops varying, and knob columns only get added.
struct KnobTracker {
  struct Seen {
    std::string first;
    int count = 0;
    bool varies = false;
  };
  std::unordered_map<std::string, Seen> paths;
  int trials = 0;
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
  const nlohmann::json* value = node_at(record.config, knobs_[column]);
  if (!value) return {};
  if (role == kSortRole && value->is_number()) return value->get<double>();
  return knob_text(*value);
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
  std::vector<std::pair<std::string, const nlohmann::json*>> leaves;
  for (int row = first; row < first + count; ++row) {
    leaves.clear();
    collect_leaves(store_.trial(row).config, "", leaves);
    for (const auto& [path, node] : leaves) {
      auto [found, inserted] = tracker.paths.try_emplace(path);
      KnobTracker::Seen& seen = found->second;
      const std::string text = node->dump();
      if (inserted) {
        seen.first = text;
      } else if (!seen.varies && seen.first != text) {
        seen.varies = true;
      }
      ++seen.count;
    }
    ++tracker.trials;
  }
}

std::vector<std::string> TrialTableModel::varying_knobs() const {
  std::vector<std::string> knobs;
  for (const auto& [path, seen] : tracker_->paths) {
    if (seen.varies || seen.count != tracker_->trials) knobs.push_back(path);
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
