#include "gui/compare_dialog.h"

#include <QDialogButtonBox>
#include <QHeaderView>
#include <QTableWidget>
#include <QVBoxLayout>

#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {

CompareDialog::CompareDialog(const TrialStore& store, std::vector<int> trials, QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("Compare trials"));
  const int columns = static_cast<int>(trials.size());

  // Rows: status, the figures, then every knob (core/config.h knob_table).
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
  for (const ConfigKnob& knob : knob_table()) {
    add_row(QString::fromStdString(std::string(knob.path)),
            [&knob](const TrialRecord& r) { return QString::fromStdString(knob_text(knob.read(r.config))); });
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
