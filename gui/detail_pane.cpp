#include "gui/detail_pane.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QScrollArea>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "core/arena.h"
#include "core/error.h"
#include "core/json_file.h"
#include "gui/front_view.h"
#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {
namespace {

QColor category_colour(int category) {
  static const QColor palette[kMemCategoryCount] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                                    QColor(214, 39, 40),  QColor(148, 103, 189), QColor(140, 86, 75),
                                                    QColor(127, 127, 127)};
  return palette[category];
}

QCustomPlot* make_chart(const QString& title) {
  auto* plot = new QCustomPlot;
  plot->setMinimumHeight(190);
  plot->plotLayout()->insertRow(0);
  plot->plotLayout()->addElement(0, 0, new QCPTextElement(plot, title, QFont("sans", 9, QFont::Bold)));
  plot->legend->setFont(QFont("sans", 7));
  plot->legend->setBrush(QColor(255, 255, 255, 200));
  return plot;
}

// The memory chart's legend sits right of the bars: inside it would hide them.
QCustomPlot* make_memory_chart(const QString& title) {
  QCustomPlot* plot = make_chart(title);
  plot->axisRect()->insetLayout()->take(plot->legend);
  plot->plotLayout()->addElement(1, 1, plot->legend);
  plot->plotLayout()->setColumnStretchFactor(1, 0.001);
  plot->legend->setLayer("legend");
  plot->legend->setIconSize(10, 8);
  plot->setMinimumHeight(220);
  return plot;
}

void set_title(QCustomPlot* plot, const QString& title) {
  if (auto* text = qobject_cast<QCPTextElement*>(plot->plotLayout()->element(0, 0))) text->setText(title);
}

}  // namespace

DetailPane::DetailPane(const TrialStore& store, QWidget* parent) : QWidget(parent), store_(store) {
  title_ = new QLabel(tr("No trial selected"));
  title_->setWordWrap(true);
  title_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  config_tree_ = new QTreeWidget;
  config_tree_->setColumnCount(2);
  config_tree_->setHeaderLabels({tr("Config"), tr("Value")});
  config_tree_->setMinimumHeight(180);
  config_tree_->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);

  memory_plot_ = make_memory_chart(tr("Peak memory per rank"));
  time_plot_ = make_chart(tr("Step time breakdown"));
  loss_plot_ = make_chart(tr("Loss"));
  // No legend of its own: the pane is narrow, and the colours are those of
  // the per-rank chart just above.
  timeline_plot_ = make_chart(tr("Memory over time, rank 0 (dashed: total)"));
  trace_label_ = new QLabel;
  trace_label_->setWordWrap(true);
  trace_label_->setAlignment(Qt::AlignCenter);
  trace_label_->setStyleSheet("color: gray; border: 1px dashed #bbb; padding: 6px;");

  prediction_table_ = new QTableWidget(0, 4);
  prediction_table_->setHorizontalHeaderLabels({tr("Metric"), tr("Predicted"), tr("Measured"), tr("Error %")});
  prediction_table_->verticalHeader()->hide();
  prediction_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  prediction_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  prediction_table_->setMinimumHeight(140);

  // Everything in one scrolling column: the dock is narrow and tall.
  auto* content = new QWidget;
  auto* column = new QVBoxLayout(content);
  column->addWidget(title_);
  column->addWidget(config_tree_);
  column->addWidget(memory_plot_);
  column->addWidget(trace_label_);
  column->addWidget(timeline_plot_);
  column->addWidget(time_plot_);
  column->addWidget(loss_plot_);
  column->addWidget(new QLabel(tr("Prediction vs measurement")));
  column->addWidget(prediction_table_);
  auto* scroll = new QScrollArea;
  scroll->setWidget(content);
  scroll->setWidgetResizable(true);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(scroll);
  show_trial(-1);
}

void DetailPane::show_trial(int store_index) {
  trial_ = store_index >= 0 && store_index < store_.trial_count() ? store_index : -1;
  if (trial_ < 0) {
    title_->setText(tr("No trial selected"));
  } else {
    const TrialRecord& record = store_.trial(trial_);
    QString text = QStringLiteral("<b>%1</b> — %2").arg(QString::fromStdString(record.id),
                                                        QString::fromUtf8(to_string(record.status).data()));
    if (!record.error.empty()) text += "<br>" + QString::fromStdString(record.error).toHtmlEscaped();
    title_->setText(text);
  }
  fill_config();
  fill_memory();
  fill_time();
  fill_loss();
  fill_prediction();
  fill_timeline();
}

// The trace (Chrome trace-event JSON, probes/trace_writer.h) holds a counter
// event "memory" after every arena change, with the live bytes of each
// category: drawn as one line per category (and the total) over the trial.
void DetailPane::fill_timeline() {
  timeline_plot_->clearGraphs();
  auto no_timeline = [&](const QString& why) {
    trace_label_->setText(why);
    trace_label_->show();
    timeline_plot_->hide();
  };
  if (trial_ < 0 || store_.trial(trial_).trace.empty()) return no_timeline(tr("no trace recorded"));
  // The record names its trace relative to the results file's folder.
  const QString results = store_.files()[store_.file_of(trial_)].path;
  const QString trace = QFileInfo(results).dir().filePath(QString::fromStdString(store_.trial(trial_).trace));
  // Read as every file memfront reads (core/json_file.h): only a regular
  // file, and nesting no deeper than the walk over it can take.
  nlohmann::json events;
  try {
    events = read_json_file(trace.toStdString(), "trace").at("traceEvents");
  } catch (const InputError& error) {
    return no_timeline(tr("trace %1 could not be read: %2").arg(trace, QString::fromUtf8(error.what())));
  } catch (const nlohmann::json::exception& error) {
    return no_timeline(tr("trace %1 is not a trace: %2").arg(trace, QString::fromUtf8(error.what())));
  }
  QVector<double> time_ms;
  std::vector<QVector<double>> mib(kMemCategoryCount + 1);  // categories, then the total
  for (const nlohmann::json& event : events) {
    if (!event.is_object() || event.value("ph", "") != "C" || event.value("name", "") != "memory" ||
        event.value("pid", -1) != 0 || !event.contains("args")) {
      continue;
    }
    const nlohmann::json& args = event["args"];
    time_ms.push_back(event.value("ts", 0.0) / 1e3);
    for (int c = 0; c <= kMemCategoryCount; ++c) {
      const char* key = c < kMemCategoryCount ? to_string(kAllMemCategories[c]).data() : "total";
      mib[c].push_back(args.value(key, 0.0) / (1024.0 * 1024.0));
    }
  }
  if (time_ms.isEmpty()) return no_timeline(tr("trace %1 has no memory counters").arg(trace));
  for (int c = 0; c <= kMemCategoryCount; ++c) {
    QCPGraph* graph = timeline_plot_->addGraph();
    graph->setName(c < kMemCategoryCount ? QString::fromUtf8(to_string(kAllMemCategories[c]).data()) : tr("total"));
    graph->setPen(c < kMemCategoryCount ? QPen(category_colour(c), 1.2) : QPen(Qt::black, 1.5, Qt::DashLine));
    graph->setLineStyle(QCPGraph::lsStepLeft);
    graph->setData(time_ms, mib[c], /*alreadySorted=*/true);
  }
  timeline_plot_->xAxis->setLabel(tr("time [ms]"));
  timeline_plot_->yAxis->setLabel(tr("live [MiB]"));
  timeline_plot_->legend->setVisible(false);
  timeline_plot_->rescaleAxes();
  timeline_plot_->replot();
  trace_label_->hide();
  timeline_plot_->show();
}

void DetailPane::fill_config() {
  config_tree_->clear();
  if (trial_ < 0) return;
  // One item per knob, under an item per group of the config file ("shard"),
  // in the knob table's order.
  const Config& config = store_.trial(trial_).config;
  std::map<std::string_view, QTreeWidgetItem*> groups;
  for (const ConfigKnob& knob : knob_table()) {
    const size_t dot = knob.path.find('.');
    QTreeWidgetItem* parent = config_tree_->invisibleRootItem();
    if (dot != std::string_view::npos) {
      const std::string_view group = knob.path.substr(0, dot);
      QTreeWidgetItem*& item = groups[group];
      if (!item) item = new QTreeWidgetItem(parent, {QString::fromUtf8(group.data(), qsizetype(group.size()))});
      parent = item;
    }
    const std::string_view key = dot == std::string_view::npos ? knob.path : knob.path.substr(dot + 1);
    new QTreeWidgetItem(parent, {QString::fromUtf8(key.data(), qsizetype(key.size())),
                                 QString::fromStdString(knob_text(knob.read(config)))});
  }
  config_tree_->expandAll();
}

void DetailPane::fill_memory() {
  memory_plot_->clearPlottables();
  memory_plot_->legend->setVisible(false);
  const TrialRecord* record = trial_ >= 0 ? &store_.trial(trial_) : nullptr;
  if (!record || !record->metrics || record->metrics->ranks.empty()) {
    set_title(memory_plot_, tr("Peak memory per rank: not measured"));
    memory_plot_->replot();
    return;
  }
  const TrialMetrics& metrics = *record->metrics;
  uint64_t largest = 0;
  for (const RankMetrics& rank : metrics.ranks) {
    uint64_t sum = 0;
    for (uint64_t bytes : rank.peak) sum += bytes;
    largest = std::max(largest, sum);
  }
  const AxisUnit unit = axis_unit_for("peak_mem", double(largest));
  QVector<double> positions;
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  for (const RankMetrics& rank : metrics.ranks) {
    positions.push_back(rank.rank);
    ticker->addTick(rank.rank, tr("rank %1").arg(rank.rank));
  }
  // One QCPBars per category, each stacked on the previous one.
  QCPBars* below = nullptr;
  for (int c = 0; c < kMemCategoryCount; ++c) {
    QVector<double> heights;
    bool any = false;
    for (const RankMetrics& rank : metrics.ranks) {
      heights.push_back(double(rank.peak[c]) / unit.divisor);
      any = any || rank.peak[c] > 0;
    }
    if (!any) continue;
    auto* bars = new QCPBars(memory_plot_->xAxis, memory_plot_->yAxis);
    bars->setName(QString::fromUtf8(to_string(kAllMemCategories[c]).data()));
    bars->setBrush(category_colour(c));
    bars->setPen(QPen(category_colour(c).darker(130)));
    bars->setWidth(0.6);
    bars->setData(positions, heights);
    if (below) bars->moveAbove(below);
    below = bars;
  }
  memory_plot_->xAxis->setTicker(ticker);
  memory_plot_->xAxis->setRange(-0.6, metrics.ranks.back().rank + 0.6);
  memory_plot_->yAxis->setLabel(tr("sum of category peaks [%1]").arg(unit.unit));
  memory_plot_->yAxis->setRange(0, double(largest) / unit.divisor * 1.1);
  memory_plot_->legend->setVisible(true);
  const double spread = double(metrics.peak_total_max - metrics.peak_total_min);
  auto bytes_text = [](uint64_t bytes) { return QString::fromStdString(format_metric("peak_mem", double(bytes))); };
  QString title = tr("Peak memory per rank\ntotal %1, spread %2")
                      .arg(bytes_text(metrics.peak_total_max), QString::fromStdString(format_metric("peak_mem", spread)));
  // The arena is the measurement; what the system saw is shown beside it.
  const RankMetrics& first = metrics.ranks.front();
  if (first.gpu.is_object()) {
    title += tr("\nrank 0 cross-checks: device pool high-water %1")
                 .arg(bytes_text(first.gpu.value("pool_used_high_bytes", uint64_t{0})));
    const nlohmann::json& cupti = first.gpu.contains("cupti") ? first.gpu["cupti"] : nlohmann::json();
    if (cupti.is_object() && cupti.contains("memory2_peak_bytes")) {
      title += tr(", CUPTI allocations %1").arg(bytes_text(cupti.value("memory2_peak_bytes", uint64_t{0})));
    }
  } else if (first.rss_peak_bytes > 0) {
    title += tr("\nrank 0 cross-check: process RSS high-water %1").arg(bytes_text(first.rss_peak_bytes));
  }
  set_title(memory_plot_, title);
  memory_plot_->replot();
}

void DetailPane::fill_time() {
  time_plot_->clearPlottables();
  const TrialRecord* record = trial_ >= 0 ? &store_.trial(trial_) : nullptr;
  if (!record || !record->metrics) {
    set_title(time_plot_, tr("Step time breakdown: not measured"));
    time_plot_->replot();
    return;
  }
  const TrialMetrics& metrics = *record->metrics;
  const auto recompute = metrics.phase_s.find("recompute");
  const std::vector<std::pair<QString, double>> parts = {
      {tr("compute"), metrics.compute_s},
      {tr("comm"), metrics.comm_s},
      {tr("exposed\ncomm"), metrics.exposed_comm_s},
      {tr("recompute"), recompute == metrics.phase_s.end() ? 0.0 : recompute->second}};
  double largest = metrics.step_time_s.median;
  for (const auto& part : parts) largest = std::max(largest, part.second);
  const AxisUnit unit = axis_unit_for("step_time", largest);
  QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
  QVector<double> positions, heights;
  for (size_t i = 0; i < parts.size(); ++i) {
    positions.push_back(double(i));
    heights.push_back(parts[i].second / unit.divisor);
    ticker->addTick(double(i), parts[i].first);
  }
  auto* bars = new QCPBars(time_plot_->xAxis, time_plot_->yAxis);
  bars->setBrush(QColor(44, 160, 44));
  bars->setPen(QPen(QColor(30, 110, 30)));
  bars->setWidth(0.6);
  bars->setData(positions, heights);
  time_plot_->xAxis->setTicker(ticker);
  time_plot_->xAxis->setRange(-0.6, parts.size() - 0.4);
  time_plot_->yAxis->setLabel(tr("per step [%1]").arg(unit.unit));
  time_plot_->yAxis->setRange(0, largest / unit.divisor * 1.1);
  set_title(time_plot_, tr("Step time breakdown — median step %1")
                            .arg(QString::fromStdString(format_metric("step_time", metrics.step_time_s.median))));
  time_plot_->replot();
}

int DetailPane::reference_of(int store_index) const {
  const int file = store_.file_of(store_index);
  for (int i = 0; i < store_.trial_count(); ++i) {
    if (store_.file_of(i) != file) continue;
    const auto& metrics = store_.trial(i).metrics;
    if (metrics && metrics->loss_delta && *metrics->loss_delta == 0.0) return i;
  }
  return -1;
}

void DetailPane::fill_loss() {
  loss_plot_->clearGraphs();
  loss_plot_->legend->setVisible(false);
  const TrialRecord* record = trial_ >= 0 ? &store_.trial(trial_) : nullptr;
  if (!record || !record->metrics || record->metrics->loss_curve.empty()) {
    set_title(loss_plot_, tr("Loss: not measured"));
    loss_plot_->replot();
    return;
  }
  auto add_curve = [this](const std::vector<double>& curve, const QString& name, QPen pen) {
    QVector<double> steps, losses;
    for (size_t s = 0; s < curve.size(); ++s) {
      steps.push_back(double(s));
      losses.push_back(curve[s]);
    }
    QCPGraph* graph = loss_plot_->addGraph();
    graph->setName(name);
    graph->setPen(pen);
    graph->setData(steps, losses, true);
  };
  const int reference = reference_of(trial_);
  if (reference >= 0 && reference != trial_)
    add_curve(store_.trial(reference).metrics->loss_curve, tr("reference"),
              QPen(QColor(127, 127, 127), 1.5, Qt::DashLine));
  add_curve(record->metrics->loss_curve, tr("this trial"), QPen(QColor(214, 39, 40), 2));
  loss_plot_->rescaleAxes();
  loss_plot_->xAxis->setLabel(tr("step"));
  loss_plot_->yAxis->setLabel(tr("training loss"));
  loss_plot_->legend->setVisible(true);
  // The curves fall from the top left, so the bottom left is free.
  loss_plot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignLeft);
  QString title = tr("Loss — final %1").arg(record->metrics->final_loss, 0, 'f', 4);
  if (record->metrics->loss_delta) title += tr(", Δ vs reference %1").arg(*record->metrics->loss_delta, 0, 'g', 3);
  set_title(loss_plot_, title);
  loss_plot_->replot();
}

void DetailPane::fill_prediction() {
  prediction_table_->setRowCount(0);
  const TrialRecord* record = trial_ >= 0 ? &store_.trial(trial_) : nullptr;
  if (!record || !record->prediction) return;
  // Every metric the cost model predicts, beside its measurement.
  for (const MetricInfo& metric : metric_registry()) {
    if (!metric.predicted) continue;
    const std::optional<double> predicted = metric.predicted(*record->prediction);
    if (!predicted) continue;
    const std::optional<double> measured = record->metrics ? metric.measured(*record->metrics) : std::nullopt;
    const int row = prediction_table_->rowCount();
    prediction_table_->insertRow(row);
    prediction_table_->setItem(row, 0, new QTableWidgetItem(QString::fromStdString(metric.name)));
    prediction_table_->setItem(row, 1, new QTableWidgetItem(QString::fromStdString(format_metric_value(metric.unit, *predicted))));
    prediction_table_->setItem(row, 2, new QTableWidgetItem(measured ? QString::fromStdString(format_metric_value(metric.unit, *measured))
                                                                     : tr("—")));
    QString error = tr("—");
    if (measured && *measured != 0) error = QString::number((*predicted - *measured) / *measured * 100, 'f', 1);
    prediction_table_->setItem(row, 3, new QTableWidgetItem(error));
  }
}

}  // namespace memfront
