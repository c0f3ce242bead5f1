#include "gui/compare_dialog.h"

#include <QDialogButtonBox>
#include <QHeaderView>
#include <QTableWidget>
#include <QVBoxLayout>

#include <map>
#include <set>

#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {
namespace {

void flatten(const nlohmann::json& node, const std::string& prefix, std::map<std::string, QString>& out) {
  if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out[prefix] = node.is_string() ? QString::fromStdString(node.get<std::string>()) : QString::fromStdString(node.dump());
  }
}

}  // namespace

CompareDialog::CompareDialog(const TrialStore& store, std::vector<int> trials, QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("Compare trials"));
  const int columns = static_cast<int>(trials.size());

  // Rows: status, the figures, then every config path any of the trials has.
  std::vector<std::pair<QString, std::vector<QString>>> rows;
  auto add_row = [&](const QString& name, auto&& value_of) {
    std::vector<QString> cells;
    for (int t : trials) cells.push_back(value_of(store.trial(t)));
    rows.emplace_back(name, std::move(cells));
  };
  add_row(tr("status"), [](const TrialRecord& r) { return QString::fromUtf8(to_string(r.status).data()); });
  for (const MetricInfo& figure : metric_registry()) {
    if (!figure.summary) continue;
    const MetricRef metric = *resolve_metric(figure.name).metric;
    add_row(QString::fromStdString(figure.name), [&metric](const TrialRecord& r) {
      const auto value = metric(r);
      return value ? QString::fromStdString(format_metric_value(metric.unit, *value)) : QString();
    });
  }
  std::vector<std::map<std::string, QString>> configs(trials.size());
  std::set<std::string> paths;
  for (size_t c = 0; c < trials.size(); ++c) {
    flatten(store.trial(trials[c]).config, "", configs[c]);
    for (const auto& entry : configs[c]) paths.insert(entry.first);
  }
  for (const std::string& path : paths) {
    std::vector<QString> cells;
    for (const auto& config : configs) {
      auto it = config.find(path);
      cells.push_back(it == config.end() ? QString() : it->second);
    }
    rows.emplace_back(QString::fromStdString(path), std::move(cells));
  }

  table_ = new QTableWidget(static_cast<int>(rows.size()), columns);
  QStringList headers;
  for (int t : trials) headers << QString::fromStdString(store.trial(t).id);
  table_->setHorizontalHeaderLabels(headers);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  const QColor differs(255, 236, 179);
  for (int r = 0; r < static_cast<int>(rows.size()); ++r) {
    table_->setVerticalHeaderItem(r, new QTableWidgetItem(rows[r].first));
    const auto& cells = rows[r].second;
    const bool different = std::any_of(cells.begin(), cells.end(), [&](const QString& c) { return c != cells.front(); });
    for (int c = 0; c < columns; ++c) {
      auto* item = new QTableWidgetItem(cells[c]);
      if (different) item->setBackground(differs);
      table_->setItem(r, c, item);
    }
  }
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);

  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(table_);
  layout->addWidget(buttons);
  resize(260 + 200 * columns, 600);
}

}  // namespace memfront
