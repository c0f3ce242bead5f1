#pragma once
// ParallelView: parallel coordinates over the shown trials. One vertical axis
// per objective and per varying knob (numeric knobs on a linear scale,
// categorical ones as evenly spaced labels), one thin translucent polyline per
// trial, the selected trial drawn bold. Dragging along an axis brushes a
// range; the trials inside every brush are announced so the table and the
// front view can narrow to them.
#include <QImage>
#include <QStringList>
#include <QWidget>

#include <string>
#include <vector>

namespace memfront {

class TrialStore;
struct FrontAnalysis;

class ParallelView : public QWidget {
  Q_OBJECT
 public:
  explicit ParallelView(const TrialStore& store, QWidget* parent = nullptr);

  // Rebuilds the axes from the store's trials; `analysis` says which trials
  // are shown (the front view's status toggle).
  void set_data(const std::vector<std::string>& objectives, const FrontAnalysis& analysis);
  void set_selected(int store_index);
  void clear_brushes();

  int axis_count() const { return static_cast<int>(axes_.size()); }
  // Store indices inside every brush; empty when nothing is brushed.
  const std::vector<int>& brushed() const { return brushed_; }
  // Brushes axis `axis` to the fraction range [lo, hi] of its height (0 = bottom).
  void brush(int axis, double lo, double hi);

  QSize sizeHint() const override { return {700, 320}; }

 signals:
  void brushed_changed(const std::vector<int>& trials);  // empty = no brush

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;

 private:
  struct Axis {
    QString name;
    std::vector<double> position;  // per trial, 0..1 (bottom to top); NaN when missing
    QStringList categories;        // categorical axis labels, bottom to top; empty when numeric
    double min = 0, max = 0;       // numeric range
    double brush_lo = -1, brush_hi = -1;  // fraction of height; lo < 0 = no brush
  };
  QRectF plot_area() const;
  double axis_x(int axis) const;
  int axis_near(double x) const;  // -1 when none within reach
  void update_brushed();
  void render_lines();  // the many polylines, into lines_ (drawn once per change)

  const TrialStore& store_;
  std::vector<Axis> axes_;
  std::vector<int> shown_;  // store indices drawn
  std::vector<int> brushed_;
  std::vector<bool> in_brush_;  // per trial, when some brush is set
  int selected_ = -1;
  QImage lines_;
  bool lines_dirty_ = true;
  int drag_axis_ = -1;
  double drag_start_ = 0;
};

}  // namespace memfront
