#include "gui/parallel_view.h"

#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "gui/front_analysis.h"
#include "gui/front_view.h"
#include "gui/trial_store.h"
#include "tuner/metrics.h"

namespace memfront {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxKnobAxes = 5;  // beyond this the axes crowd each other out

}  // namespace

ParallelView::ParallelView(const TrialStore& store, QWidget* parent) : QWidget(parent), store_(store) {
  setMinimumSize(300, 200);
  setMouseTracking(false);
  setAutoFillBackground(true);
  setPalette(QPalette(Qt::white));
}

void ParallelView::set_data(const std::vector<std::string>& objectives, const FrontAnalysis& analysis) {
  const int n = store_.trial_count();
  shown_.clear();
  for (int i = 0; i < n && i < static_cast<int>(analysis.shown.size()); ++i)
    if (analysis.shown[i]) shown_.push_back(i);

  // Keep the brushes of axes that survive the rebuild (new trials in watch mode).
  std::map<QString, std::pair<double, double>> old_brushes;
  for (const Axis& axis : axes_) old_brushes[axis.name] = {axis.brush_lo, axis.brush_hi};
  axes_.clear();

  for (const std::string& objective : objectives) {
    const std::string name = objective.starts_with('-') ? objective.substr(1) : objective;
    const std::optional<MetricRef> metric = resolve_metric(name).metric;  // unknown: an axis without values
    Axis axis;
    axis.name = QString::fromStdString(name);
    std::vector<double> raw(n, kNaN);
    axis.min = std::numeric_limits<double>::infinity();
    axis.max = -axis.min;
    for (int i : shown_) {
      if (!metric) break;
      if (auto value = (*metric)(store_.trial(i)); value && std::isfinite(*value)) {
        raw[i] = *value;
        axis.min = std::min(axis.min, *value);
        axis.max = std::max(axis.max, *value);
      }
    }
    const double span = axis.max > axis.min ? axis.max - axis.min : 1;
    axis.position.assign(n, kNaN);
    for (int i : shown_)
      if (!std::isnan(raw[i])) axis.position[i] = (raw[i] - axis.min) / span;
    axes_.push_back(std::move(axis));
  }

  std::vector<std::string> knobs = varying_knobs(store_);
  if (static_cast<int>(knobs.size()) > kMaxKnobAxes) knobs.resize(kMaxKnobAxes);
  for (const std::string& knob : knobs) {
    Axis axis;
    axis.name = QString::fromStdString(knob);
    std::vector<QString> text(n);
    bool numeric = true;
    const ConfigKnob* resolved = find_knob(knob);
    for (int i : shown_) {
      if (resolved) text[i] = QString::fromStdString(knob_text(resolved->read(store_.trial(i).config)));
      bool ok = false;
      text[i].toDouble(&ok);
      numeric = numeric && (ok || text[i].isEmpty());
    }
    axis.position.assign(n, kNaN);
    if (numeric) {
      axis.min = std::numeric_limits<double>::infinity();
      axis.max = -axis.min;
      for (int i : shown_)
        if (!text[i].isEmpty()) {
          axis.min = std::min(axis.min, text[i].toDouble());
          axis.max = std::max(axis.max, text[i].toDouble());
        }
      const double span = axis.max > axis.min ? axis.max - axis.min : 1;
      for (int i : shown_)
        if (!text[i].isEmpty()) axis.position[i] = (text[i].toDouble() - axis.min) / span;
    } else {
      std::map<QString, int> index;
      for (int i : shown_)
        if (!text[i].isEmpty()) index.emplace(text[i], 0);
      int k = 0;
      for (auto& [label, slot] : index) {
        slot = k++;
        axis.categories << label;
      }
      const double span = std::max(1, k - 1);
      for (int i : shown_)
        if (!text[i].isEmpty()) axis.position[i] = k == 1 ? 0.5 : index[text[i]] / span;
    }
    axes_.push_back(std::move(axis));
  }
  for (Axis& axis : axes_)
    if (auto it = old_brushes.find(axis.name); it != old_brushes.end())
      std::tie(axis.brush_lo, axis.brush_hi) = it->second;
  update_brushed();
  lines_dirty_ = true;
  update();
}

void ParallelView::set_selected(int store_index) {
  selected_ = store_index;
  update();
}

void ParallelView::clear_brushes() {
  for (Axis& axis : axes_) axis.brush_lo = axis.brush_hi = -1;
  update_brushed();
  lines_dirty_ = true;
  update();
  emit brushed_changed(brushed_);
}

void ParallelView::brush(int axis, double lo, double hi) {
  if (axis < 0 || axis >= axis_count()) return;
  axes_[axis].brush_lo = std::clamp(std::min(lo, hi), 0.0, 1.0);
  axes_[axis].brush_hi = std::clamp(std::max(lo, hi), 0.0, 1.0);
  update_brushed();
  lines_dirty_ = true;
  update();
  emit brushed_changed(brushed_);
}

void ParallelView::update_brushed() {
  brushed_.clear();
  in_brush_.clear();
  const bool any = std::any_of(axes_.begin(), axes_.end(), [](const Axis& a) { return a.brush_lo >= 0; });
  if (!any) return;
  in_brush_.assign(store_.trial_count(), false);
  for (int i : shown_) {
    bool inside = true;
    for (const Axis& axis : axes_) {
      if (axis.brush_lo < 0) continue;
      const double p = axis.position[i];
      if (std::isnan(p) || p < axis.brush_lo || p > axis.brush_hi) {
        inside = false;
        break;
      }
    }
    if (inside) {
      in_brush_[i] = true;
      brushed_.push_back(i);
    }
  }
}

QRectF ParallelView::plot_area() const {
  return QRectF(50, 36, std::max(10, width() - 100), std::max(10, height() - 70));
}

double ParallelView::axis_x(int axis) const {
  const QRectF area = plot_area();
  if (axes_.size() <= 1) return area.center().x();
  return area.left() + area.width() * axis / (axes_.size() - 1);
}

int ParallelView::axis_near(double x) const {
  for (int a = 0; a < axis_count(); ++a)
    if (std::abs(axis_x(a) - x) < 14) return a;
  return -1;
}

void ParallelView::render_lines() {
  lines_ = QImage(size() * devicePixelRatioF(), QImage::Format_ARGB32_Premultiplied);
  lines_.setDevicePixelRatio(devicePixelRatioF());
  lines_.fill(Qt::transparent);
  if (axes_.empty()) return;
  QPainter painter(&lines_);
  painter.setRenderHint(QPainter::Antialiasing, shown_.size() < 5000);
  const QRectF area = plot_area();
  // Lighter lines the more there are, so dense regions read as density.
  const int alpha = std::clamp(int(4000 / std::max<size_t>(1, shown_.size())) + 8, 8, 90);
  const QPen dim(QColor(170, 170, 170, alpha / 2 + 4), 1);
  const QPen bright(QColor(31, 119, 180, alpha), 1);
  const bool brushing = !in_brush_.empty();
  // Dimmed lines first, so the brushed ones stay on top.
  for (int pass = 0; pass < 2; ++pass) {
    for (int i : shown_) {
      const bool highlighted = !brushing || in_brush_[i];
      if (highlighted != (pass == 1)) continue;
      painter.setPen(highlighted ? bright : dim);
      QPainterPath path;
      bool pen_down = false;
      for (int a = 0; a < axis_count(); ++a) {
        const double p = axes_[a].position[i];
        if (std::isnan(p)) {
          pen_down = false;
          continue;
        }
        const QPointF point(axis_x(a), area.bottom() - p * area.height());
        if (pen_down)
          path.lineTo(point);
        else
          path.moveTo(point);
        pen_down = true;
      }
      painter.drawPath(path);
    }
  }
  lines_dirty_ = false;
}

void ParallelView::paintEvent(QPaintEvent*) {
  if (lines_dirty_ || lines_.size() != size() * devicePixelRatioF()) render_lines();
  QPainter painter(this);
  painter.drawImage(0, 0, lines_);
  painter.setRenderHint(QPainter::Antialiasing);
  const QRectF area = plot_area();

  if (axes_.empty()) {
    painter.drawText(rect(), Qt::AlignCenter, tr("no trials"));
    return;
  }
  if (selected_ >= 0 && selected_ < store_.trial_count()) {
    QPainterPath path;
    bool pen_down = false;
    for (int a = 0; a < axis_count(); ++a) {
      const double p = axes_[a].position.size() > size_t(selected_) ? axes_[a].position[selected_] : kNaN;
      if (std::isnan(p)) {
        pen_down = false;
        continue;
      }
      const QPointF point(axis_x(a), area.bottom() - p * area.height());
      pen_down ? path.lineTo(point) : path.moveTo(point);
      pen_down = true;
    }
    painter.setPen(QPen(QColor(230, 0, 120), 2.5));
    painter.drawPath(path);
  }

  const QFontMetrics metrics(font());
  for (int a = 0; a < axis_count(); ++a) {
    const Axis& axis = axes_[a];
    const double x = axis_x(a);
    painter.setPen(QPen(Qt::black, 1.2));
    painter.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
    if (axis.brush_lo >= 0) {
      const QRectF band(x - 6, area.bottom() - axis.brush_hi * area.height(), 12,
                        (axis.brush_hi - axis.brush_lo) * area.height());
      painter.fillRect(band, QColor(255, 165, 0, 110));
      painter.drawRect(band);
    }
    // Name above, range or categories beside.
    const QRectF name_box(x - 70, 4, 140, 16);
    painter.drawText(name_box, Qt::AlignCenter, metrics.elidedText(axis.name, Qt::ElideMiddle, 140));
    painter.setPen(QColor(80, 80, 80));
    if (axis.categories.isEmpty()) {
      auto text = [&](double v) {
        const MetricInfo* metric = find_metric(axis.name.toStdString());
        return metric ? QString::fromStdString(format_metric_value(metric->unit, v)) : QString::number(v, 'g', 4);
      };
      painter.drawText(QRectF(x - 70, area.top() - 17, 140, 14), Qt::AlignCenter, text(axis.max));
      painter.drawText(QRectF(x - 70, area.bottom() + 3, 140, 14), Qt::AlignCenter, text(axis.min));
    } else {
      const int k = axis.categories.size();
      for (int c = 0; c < k; ++c) {
        const double p = k == 1 ? 0.5 : double(c) / (k - 1);
        const double y = area.bottom() - p * area.height();
        painter.drawText(QRectF(x + 4, y - 7, 80, 14), Qt::AlignLeft | Qt::AlignVCenter, axis.categories[c]);
      }
    }
  }
}

void ParallelView::resizeEvent(QResizeEvent* event) {
  lines_dirty_ = true;
  QWidget::resizeEvent(event);
}

void ParallelView::mousePressEvent(QMouseEvent* event) {
  drag_axis_ = axis_near(event->position().x());
  const QRectF area = plot_area();
  drag_start_ = (area.bottom() - event->position().y()) / area.height();
}

void ParallelView::mouseMoveEvent(QMouseEvent* event) {
  if (drag_axis_ < 0) return;
  const QRectF area = plot_area();
  const double now = (area.bottom() - event->position().y()) / area.height();
  Axis& axis = axes_[drag_axis_];
  axis.brush_lo = std::clamp(std::min(drag_start_, now), 0.0, 1.0);
  axis.brush_hi = std::clamp(std::max(drag_start_, now), 0.0, 1.0);
  update();  // the band follows the mouse; the lines are recomputed on release
}

void ParallelView::mouseReleaseEvent(QMouseEvent* event) {
  if (drag_axis_ < 0) return;
  const QRectF area = plot_area();
  const double now = (area.bottom() - event->position().y()) / area.height();
  // A click without a drag clears that axis' brush.
  if (std::abs(now - drag_start_) * area.height() < 3)
    axes_[drag_axis_].brush_lo = axes_[drag_axis_].brush_hi = -1;
  const int axis = drag_axis_;
  drag_axis_ = -1;
  if (axes_[axis].brush_lo < 0) {
    update_brushed();
    lines_dirty_ = true;
    update();
    emit brushed_changed(brushed_);
  } else {
    brush(axis, axes_[axis].brush_lo, axes_[axis].brush_hi);
  }
}

}  // namespace memfront
