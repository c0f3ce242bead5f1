#include "gui/front_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMouseEvent>
#include <QPushButton>
#include <QSvgGenerator>
#include <QToolTip>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {
namespace {

// Colours that stay apart on white, for the colour groups.
QColor group_colour(int group) {
  static const QColor palette[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),
                                   QColor(148, 103, 189), QColor(140, 86, 75),  QColor(227, 119, 194),
                                   QColor(188, 189, 34),  QColor(23, 190, 207), QColor(214, 39, 40)};
  return palette[group % std::size(palette)];
}

}  // namespace

AxisUnit axis_unit_for(const std::string& metric, double largest) {
  const MetricResolution resolved = resolve_metric(metric);
  const MetricUnit unit = resolved.metric ? resolved.metric->unit : MetricUnit::none;
  if (unit == MetricUnit::bytes) {
    if (largest >= double(1ull << 30)) return {double(1ull << 30), "GiB"};
    if (largest >= double(1ull << 20)) return {double(1ull << 20), "MiB"};
    if (largest >= 1024.0) return {1024.0, "KiB"};
    return {1, "B"};
  }
  if (unit == MetricUnit::seconds) {
    if (largest >= 10.0) return {1, "s"};
    if (largest >= 0.01) return {1e-3, "ms"};
    return {1e-6, "µs"};
  }
  return {1, QString::fromUtf8(unit_symbol(unit).data(), static_cast<qsizetype>(unit_symbol(unit).size()))};
}

std::vector<std::string> varying_knobs(const TrialStore& store) {
  std::vector<std::string> knobs;
  if (!store.files().empty()) {
    const nlohmann::json& spec = store.files().front().header.study_spec;
    if (spec.is_object() && spec.contains("space") && spec["space"].is_object())
      for (auto it = spec["space"].begin(); it != spec["space"].end(); ++it) knobs.push_back(it.key());
  }
  if (!knobs.empty()) return knobs;
  // No study space: sample the trials (spread over the whole store) rather than
  // compare 100k configs.
  const int n = store.trial_count();
  const int step = std::max(1, n / 2000);
  for (const ConfigKnob& knob : knob_table()) {
    for (int i = step; i < n; i += step) {
      if (knob.read(store.trial(i).config) != knob.read(store.trial(0).config)) {
        knobs.emplace_back(knob.path);
        break;
      }
    }
  }
  std::sort(knobs.begin(), knobs.end());
  return knobs;
}

QString knob_text(const Config& config, const std::string& path) {
  const ConfigKnob* knob = find_knob(path);
  return knob ? QString::fromStdString(knob_text(knob->read(config))) : QString();
}

FrontView::FrontView(const TrialStore& store, QWidget* parent) : QWidget(parent), store_(store) {
  build_controls();
  fill_metric_combos();
}

void FrontView::build_controls() {
  x_combo_ = new QComboBox;
  y_combo_ = new QComboBox;
  colour_combo_ = new QComboBox;
  x_log_ = new QCheckBox(tr("log"));
  y_log_ = new QCheckBox(tr("log"));
  show_unsuccessful_ = new QCheckBox(tr("failed/pruned"));
  show_unsuccessful_->setChecked(settings_.show_unsuccessful);
  show_unsuccessful_->setToolTip(tr("Show unsuccessful trials (crosses)"));
  auto* reset = new QPushButton(tr("Reset view"));
  constraints_edit_ = new QLineEdit;
  constraints_edit_->setPlaceholderText(tr("constraints, e.g. peak_mem <= 40GiB; step_time < 200ms"));
  constraints_edit_->setClearButtonEnabled(true);
  constraint_error_ = new QLabel;
  constraint_error_->setStyleSheet("color: #c0392b;");
  constraint_error_->setVisible(false);

  auto* axes_row = new QHBoxLayout;
  axes_row->addWidget(new QLabel(tr("x")));
  axes_row->addWidget(x_combo_);
  axes_row->addWidget(x_log_);
  axes_row->addWidget(new QLabel(tr("y")));
  axes_row->addWidget(y_combo_);
  axes_row->addWidget(y_log_);
  axes_row->addWidget(new QLabel(tr("colour")));
  axes_row->addWidget(colour_combo_);
  axes_row->addWidget(show_unsuccessful_);
  axes_row->addStretch();
  axes_row->addWidget(reset);

  plot_ = new QCustomPlot;
  plot_->setMinimumSize(300, 200);
  plot_->setInteractions(QCP::iRangeZoom);
  plot_->setSelectionRectMode(QCP::srmZoom);  // left drag: box zoom
  plot_->setNoAntialiasingOnDrag(true);
  plot_->legend->setVisible(true);
  plot_->legend->setFont(QFont(font().family(), 8));
  plot_->legend->setBrush(QColor(255, 255, 255, 210));
  plot_->setMouseTracking(true);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->addLayout(axes_row);
  layout->addWidget(constraints_edit_);
  layout->addWidget(constraint_error_);
  layout->addWidget(plot_, 1);

  auto axes_changed = [this] {
    settings_.x = x_combo_->currentData().toString().toStdString();
    settings_.y = y_combo_->currentData().toString().toStdString();
    refresh();
    reset_view();
  };
  connect(x_combo_, &QComboBox::activated, this, axes_changed);
  connect(y_combo_, &QComboBox::activated, this, axes_changed);
  connect(colour_combo_, &QComboBox::activated, this, [this] {
    settings_.colour_by = colour_combo_->currentData().toString().toStdString();
    refresh();
  });
  connect(x_log_, &QCheckBox::toggled, this, [this] {
    redraw();
    reset_view();
  });
  connect(y_log_, &QCheckBox::toggled, this, [this] {
    redraw();
    reset_view();
  });
  connect(show_unsuccessful_, &QCheckBox::toggled, this, &FrontView::set_show_unsuccessful);
  connect(constraints_edit_, &QLineEdit::editingFinished, this,
          [this] { set_constraints(constraints_edit_->text()); });
  connect(reset, &QPushButton::clicked, this, &FrontView::reset_view);
  connect(plot_, &QCustomPlot::mousePress, this, &FrontView::on_mouse_press);
  connect(plot_, &QCustomPlot::mouseMove, this, &FrontView::on_mouse_move);
  connect(plot_, &QCustomPlot::mouseRelease, this, &FrontView::on_mouse_release);
}

void FrontView::fill_metric_combos() {
  std::vector<std::string> metrics;
  for (const std::string& objective : settings_.objectives)
    metrics.push_back(objective.starts_with('-') ? objective.substr(1) : objective);
  for (const MetricInfo& metric : metric_registry())
    if (std::find(metrics.begin(), metrics.end(), metric.name) == metrics.end()) metrics.push_back(metric.name);
  for (QComboBox* combo : {x_combo_, y_combo_}) {
    const QSignalBlocker block(combo);
    combo->clear();
    for (const std::string& m : metrics) combo->addItem(QString::fromStdString(m), QString::fromStdString(m));
  }
  x_combo_->setCurrentIndex(x_combo_->findData(QString::fromStdString(settings_.x)));
  y_combo_->setCurrentIndex(y_combo_->findData(QString::fromStdString(settings_.y)));

  const QSignalBlocker block(colour_combo_);
  colour_combo_->clear();
  colour_combo_->addItem(tr("status"), QStringLiteral("status"));
  for (const std::string& knob : varying_knobs(store_))
    colour_combo_->addItem(QString::fromStdString(knob), QString::fromStdString(knob));
  colour_combo_->setCurrentIndex(std::max(0, colour_combo_->findData(QString::fromStdString(settings_.colour_by))));
}

void FrontView::set_objectives(std::vector<std::string> objectives) {
  settings_.objectives = std::move(objectives);
  fill_metric_combos();
  refresh();
}

void FrontView::set_axes(const std::string& x, const std::string& y) {
  settings_.x = x;
  settings_.y = y;
  fill_metric_combos();
  // A metric outside the list (a dotted path) is still plotted; the combo shows it.
  for (auto [combo, name] : {std::pair{x_combo_, &x}, std::pair{y_combo_, &y}}) {
    if (combo->findData(QString::fromStdString(*name)) < 0)
      combo->addItem(QString::fromStdString(*name), QString::fromStdString(*name));
    combo->setCurrentIndex(combo->findData(QString::fromStdString(*name)));
  }
  refresh();
  reset_view();
}

void FrontView::set_constraints(const QString& text) {
  if (constraints_edit_->text() != text) constraints_edit_->setText(text);
  settings_.constraints.clear();
  for (const QString& part : text.split(';', Qt::SkipEmptyParts))
    if (!part.trimmed().isEmpty()) settings_.constraints.push_back(part.trimmed().toStdString());
  refresh();
}

void FrontView::set_colour_by(const std::string& colour_by) {
  settings_.colour_by = colour_by;
  const int index = colour_combo_->findData(QString::fromStdString(colour_by));
  if (index >= 0) colour_combo_->setCurrentIndex(index);
  refresh();
}

void FrontView::set_show_unsuccessful(bool show) {
  if (show_unsuccessful_->isChecked() != show) show_unsuccessful_->setChecked(show);
  settings_.show_unsuccessful = show;
  refresh();
}

void FrontView::set_highlighted(std::vector<int> trials) {
  highlighted_.clear();
  if (!trials.empty()) {
    highlighted_.assign(store_.trial_count(), false);
    for (int t : trials)
      if (t >= 0 && t < store_.trial_count()) highlighted_[t] = true;
  }
  redraw();
}

void FrontView::select_trial(int store_index) {
  selected_ = store_index;
  update_selection_marker();
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void FrontView::refresh() {
  // The colour choices depend on the trials (a newly loaded study space).
  if (colour_combo_->count() <= 1 && store_.trial_count() > 0) fill_metric_combos();
  const bool first = analysis_.x.empty();
  analysis_ = analyse(store_, settings_);
  constraint_error_->setText(analysis_.error);
  constraint_error_->setVisible(!analysis_.error.isEmpty());
  redraw();
  if (first && !analysis_.x.empty()) reset_view();
}

void FrontView::redraw() {
  plot_->clearGraphs();
  drawn_.clear();
  const int n = static_cast<int>(analysis_.x.size());

  // Unit choice from the largest magnitude on each axis.
  double x_max = 0, y_max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::isfinite(analysis_.x[i])) x_max = std::max(x_max, std::abs(analysis_.x[i]));
    if (std::isfinite(analysis_.y[i])) y_max = std::max(y_max, std::abs(analysis_.y[i]));
  }
  x_unit_ = axis_unit_for(settings_.x, x_max);
  y_unit_ = axis_unit_for(settings_.y, y_max);
  auto label = [](const std::string& metric, const AxisUnit& unit) {
    return unit.unit.isEmpty() ? QString::fromStdString(metric)
                               : QStringLiteral("%1 [%2]").arg(QString::fromStdString(metric), unit.unit);
  };
  plot_->xAxis->setLabel(label(settings_.x, x_unit_));
  plot_->yAxis->setLabel(label(settings_.y, y_unit_));
  const bool x_log = x_log_->isChecked(), y_log = y_log_->isChecked();
  plot_->xAxis->setScaleType(x_log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  plot_->yAxis->setScaleType(y_log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  plot_->xAxis->setTicker(x_log ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog)
                                : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  plot_->yAxis->setTicker(y_log ? QSharedPointer<QCPAxisTicker>(new QCPAxisTickerLog)
                                : QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));

  // Sort every drawable point into its graph's key/value vectors.
  const int group_count = static_cast<int>(analysis_.groups.size());
  std::vector<QVector<double>> keys(group_count), values(group_count);
  QVector<double> grey_x, grey_y, failed_x, failed_y;
  for (int i = 0; i < n; ++i) {
    if (!analysis_.shown[i]) continue;
    const double x = analysis_.x[i] / x_unit_.divisor, y = analysis_.y[i] / y_unit_.divisor;
    if (!std::isfinite(x) || !std::isfinite(y) || (x_log && x <= 0) || (y_log && y <= 0)) continue;
    drawn_.push_back(i);
    if (store_.trial(i).status != TrialStatus::ok) {
      failed_x.push_back(x);
      failed_y.push_back(y);
    } else if (!analysis_.feasible[i] || (!highlighted_.empty() && !highlighted_[i])) {
      grey_x.push_back(x);
      grey_y.push_back(y);
    } else {
      const int g = std::clamp(analysis_.colour_group[i], 0, std::max(0, group_count - 1));
      keys[g].push_back(x);
      values[g].push_back(y);
    }
  }

  // Greyed points first, so the coloured ones draw over them.
  auto add_scatter = [this](const QVector<double>& xs, const QVector<double>& ys, const QString& name,
                            QCPScatterStyle style) {
    QCPGraph* graph = plot_->addGraph();
    graph->setName(name);
    graph->setLineStyle(QCPGraph::lsNone);
    graph->setScatterStyle(style);
    graph->setAdaptiveSampling(true);
    graph->setData(xs, ys);
    if (xs.isEmpty()) graph->removeFromLegend();
    return graph;
  };
  add_scatter(grey_x, grey_y, tr("excluded"),
              QCPScatterStyle(QCPScatterStyle::ssDisc, QColor(190, 190, 190), QColor(210, 210, 210), 5));
  for (int g = 0; g < group_count; ++g) {
    const QColor colour = group_colour(g);
    add_scatter(keys[g], values[g], analysis_.groups[g],
                QCPScatterStyle(QCPScatterStyle::ssDisc, colour, colour, 6));
  }
  add_scatter(failed_x, failed_y, tr("unsuccessful"),
              QCPScatterStyle(QCPScatterStyle::ssCross, QColor(200, 40, 40), 7));

  // The front's points are ringed. With more than two objectives some of them
  // are dominated in this projection, so the step line runs only through the
  // ones that are also non-dominated on the two axes (in the objectives'
  // directions), which is the trade-off curve a reader expects to see.
  auto maximized = [this](const std::string& metric) {
    return std::find(settings_.objectives.begin(), settings_.objectives.end(), "-" + metric) !=
           settings_.objectives.end();
  };
  const double x_sign = maximized(settings_.x) ? -1 : 1, y_sign = maximized(settings_.y) ? -1 : 1;
  std::vector<std::pair<double, double>> front_points;
  QVector<double> ring_x, ring_y;
  for (int i : analysis_.front) {
    const double x = analysis_.x[i] / x_unit_.divisor, y = analysis_.y[i] / y_unit_.divisor;
    if (!std::isfinite(x) || !std::isfinite(y) || (x_log && x <= 0) || (y_log && y <= 0)) continue;
    ring_x.push_back(x);
    ring_y.push_back(y);
    front_points.emplace_back(x, y);
  }
  std::sort(front_points.begin(), front_points.end(), [&](const auto& a, const auto& b) {
    return a.first * x_sign < b.first * x_sign || (a.first == b.first && a.second * y_sign < b.second * y_sign);
  });
  QVector<double> line_x, line_y;
  double best_y = std::numeric_limits<double>::infinity();
  for (const auto& [x, y] : front_points) {
    if (y * y_sign >= best_y) continue;
    best_y = y * y_sign;
    line_x.push_back(x);
    line_y.push_back(y);
  }
  QCPGraph* front_line = plot_->addGraph();
  front_line->setName(tr("Pareto front (%1 vs %2)").arg(QString::fromStdString(settings_.x), QString::fromStdString(settings_.y)));
  front_line->setLineStyle(x_sign > 0 ? QCPGraph::lsStepLeft : QCPGraph::lsStepRight);
  front_line->setPen(QPen(QColor(20, 20, 20), 1.5));
  front_line->setData(line_x, line_y);
  if (line_x.isEmpty()) front_line->removeFromLegend();
  QCPGraph* front_rings = add_scatter(ring_x, ring_y, tr("front of all objectives"),
                                      QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(QColor(20, 20, 20), 1.5), Qt::NoBrush, 10));
  front_rings->setAdaptiveSampling(false);  // every front point stays visible

  QCPGraph* selection = plot_->addGraph();
  selection->setName(tr("selected"));
  selection->setLineStyle(QCPGraph::lsNone);
  selection->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, QPen(QColor(230, 0, 120), 2.5), Qt::NoBrush, 16));
  selection->removeFromLegend();
  update_selection_marker();
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void FrontView::update_selection_marker() {
  if (plot_->graphCount() == 0) return;
  QCPGraph* selection = plot_->graph(plot_->graphCount() - 1);
  selection->data()->clear();
  if (selected_ >= 0 && selected_ < static_cast<int>(analysis_.x.size())) {
    const double x = analysis_.x[selected_] / x_unit_.divisor, y = analysis_.y[selected_] / y_unit_.divisor;
    if (std::isfinite(x) && std::isfinite(y)) selection->addData(x, y);
  }
}

void FrontView::reset_view() {
  // Fit the data graphs only: the (possibly empty) selection marker must not
  // pull the range.
  bool first = true;
  for (int g = 0; g + 1 < plot_->graphCount(); ++g) {
    if (plot_->graph(g)->dataCount() == 0) continue;
    plot_->graph(g)->rescaleAxes(!first);
    first = false;
  }
  // A margin so points on the edge are whole.
  for (QCPAxis* axis : {plot_->xAxis, plot_->yAxis}) {
    if (axis->scaleType() == QCPAxis::stLogarithmic)
      axis->setRange(axis->range().lower / 1.15, axis->range().upper * 1.15);
    else
      axis->scaleRange(1.08, axis->range().center());
  }
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

bool FrontView::save_plot(const QString& path, int width, int height) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  const int w = width > 0 ? width : plot_->width(), h = height > 0 ? height : plot_->height();
  if (suffix == "png") return plot_->savePng(path, w, h);
  if (suffix == "pdf") return plot_->savePdf(path, w, h);
  if (suffix == "svg") {
    QSvgGenerator generator;
    generator.setFileName(path);
    generator.setSize(QSize(w, h));
    generator.setViewBox(QRect(0, 0, w, h));
    generator.setTitle(tr("memfront Pareto front"));
    QCPPainter painter;
    if (!painter.begin(&generator)) return false;
    plot_->toPainter(&painter, w, h);
    painter.end();
    return QFileInfo(path).size() > 0;
  }
  return false;
}

int FrontView::trial_at(const QPoint& pixel) const {
  constexpr double kReach = 8;  // pixels
  int best = -1;
  double best_d2 = kReach * kReach;
  const bool x_log = x_log_->isChecked(), y_log = y_log_->isChecked();
  for (int i : drawn_) {
    const double x = analysis_.x[i] / x_unit_.divisor, y = analysis_.y[i] / y_unit_.divisor;
    if ((x_log && x <= 0) || (y_log && y <= 0)) continue;
    const double dx = plot_->xAxis->coordToPixel(x) - pixel.x();
    const double dy = plot_->yAxis->coordToPixel(y) - pixel.y();
    const double d2 = dx * dx + dy * dy;
    if (d2 < best_d2) {
      best_d2 = d2;
      best = i;
    }
  }
  return best;
}

QString FrontView::tooltip_for(int i) const {
  const TrialRecord& record = store_.trial(i);
  QString text = QStringLiteral("<b>%1</b> — %2").arg(QString::fromStdString(record.id),
                                                      QString::fromUtf8(to_string(record.status).data()));
  if (!record.error.empty()) text += QStringLiteral("<br><i>%1</i>").arg(QString::fromStdString(record.error).toHtmlEscaped());
  for (const std::string& knob : varying_knobs(store_))
    text += QStringLiteral("<br>%1 = %2").arg(QString::fromStdString(knob), knob_text(record.config, knob));
  std::vector<std::string> figures = {settings_.x, settings_.y};
  for (const std::string& objective : settings_.objectives)
    figures.push_back(objective.starts_with('-') ? objective.substr(1) : objective);
  std::set<std::string> seen;
  for (const std::string& name : figures) {
    if (!seen.insert(name).second) continue;
    const MetricResolution resolved = resolve_metric(name);
    if (!resolved.metric) continue;
    if (auto value = (*resolved.metric)(record))
      text += QStringLiteral("<br>%1: %2").arg(QString::fromStdString(name),
                                               QString::fromStdString(format_metric_value(resolved.metric->unit, *value)));
  }
  return text;
}

void FrontView::on_mouse_press(QMouseEvent* event) {
  press_pos_ = event->pos();
  if (event->button() == Qt::MiddleButton ||
      (event->button() == Qt::LeftButton && event->modifiers() & Qt::ControlModifier)) {
    panning_ = true;
    last_pan_pos_ = event->pos();
    plot_->setSelectionRectMode(QCP::srmNone);  // this drag pans, it is no box zoom
  }
}

void FrontView::on_mouse_move(QMouseEvent* event) {
  if (panning_) {
    const QPoint delta = event->pos() - last_pan_pos_;
    last_pan_pos_ = event->pos();
    // Move through pixel space so a log axis pans as evenly as a linear one.
    for (auto [axis, d] : {std::pair{plot_->xAxis, delta.x()}, std::pair{plot_->yAxis, delta.y()}}) {
      const QCPRange range = axis->range();
      axis->setRange(axis->pixelToCoord(axis->coordToPixel(range.lower) - d),
                     axis->pixelToCoord(axis->coordToPixel(range.upper) - d));
    }
    plot_->replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  if (event->buttons() != Qt::NoButton) return;
  const int trial = trial_at(event->pos());
  if (trial >= 0)
    QToolTip::showText(event->globalPosition().toPoint(), tooltip_for(trial), plot_);
  else
    QToolTip::hideText();
}

void FrontView::on_mouse_release(QMouseEvent* event) {
  if (panning_) {
    panning_ = false;
    plot_->setSelectionRectMode(QCP::srmZoom);
    return;
  }
  // A click (not a box-zoom drag) selects the nearest point.
  if (event->button() != Qt::LeftButton || (event->pos() - press_pos_).manhattanLength() > 3) return;
  const int trial = trial_at(event->pos());
  if (trial < 0) return;
  select_trial(trial);
  emit trial_selected(trial);
}

}  // namespace memfront
