#pragma once
// FrontView: the scatter of two metrics over the store's trials, with the
// Pareto front of the chosen objectives drawn through it. What is drawn comes
// from analyse() (front_analysis.h); this widget only maps it onto QCustomPlot
// graphs: one graph per colour group (scatter only, so 100k points stay fast),
// one for greyed-out points (violating a constraint, or outside a brush), one
// for unsuccessful trials (crosses), one for the front (a step line) and one
// ring marking the selected trial.
#include <QString>
#include <QWidget>

#include <string>
#include <vector>

#include "core/config.h"
#include "gui/front_analysis.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QCustomPlot;
class QCPGraph;
class QMouseEvent;

namespace memfront {

class TrialStore;

// How an axis shows a metric: values are divided by `divisor` so the ticks
// read in a convenient unit (bytes in MiB or GiB, seconds in ms).
struct AxisUnit {
  double divisor = 1;
  QString unit;  // empty for plain numbers
};
AxisUnit axis_unit_for(const std::string& metric, double largest_value);

// Config paths ("shard.strategy") whose value varies among the store's trials:
// the first file's study space when it has one, else found by sampling the
// trials' configs. Offered for colouring and as parallel-coordinate axes.
std::vector<std::string> varying_knobs(const TrialStore& store);
// The value of a knob path in a config, as text ("" when no knob has that path).
QString knob_text(const Config& config, const std::string& path);

class FrontView : public QWidget {
  Q_OBJECT
 public:
  explicit FrontView(const TrialStore& store, QWidget* parent = nullptr);

  // The objectives whose front is drawn; also offered as axis metrics.
  void set_objectives(std::vector<std::string> objectives);
  void set_axes(const std::string& x, const std::string& y);
  // "peak_mem <= 40GiB; step_time < 200ms": constraints separated by ';'.
  void set_constraints(const QString& text);
  void set_colour_by(const std::string& colour_by);
  void set_show_unsuccessful(bool show);
  // Store indices that stay bright; the others are greyed. Empty = all bright.
  void set_highlighted(std::vector<int> trials);
  void select_trial(int store_index);  // -1 clears; does not emit trial_selected

  // Re-analyses the store and redraws (new trials, changed settings).
  void refresh();
  void reset_view();
  // By suffix: .png, .svg or .pdf. False when the file cannot be written.
  bool save_plot(const QString& path, int width = 0, int height = 0);

  const FrontSettings& settings() const { return settings_; }
  const FrontAnalysis& analysis() const { return analysis_; }
  QString constraint_error() const { return analysis_.error; }
  QCustomPlot* plot() const { return plot_; }
  int selected_trial() const { return selected_; }

 signals:
  void trial_selected(int store_index);

 private:
  void build_controls();
  void fill_metric_combos();
  void redraw();  // analysis_ -> graphs, no re-analysis
  void update_selection_marker();
  int trial_at(const QPoint& pixel) const;  // nearest drawn point within a few pixels, -1 if none
  QString tooltip_for(int store_index) const;
  void on_mouse_press(QMouseEvent* event);
  void on_mouse_move(QMouseEvent* event);
  void on_mouse_release(QMouseEvent* event);

  const TrialStore& store_;
  FrontSettings settings_;
  FrontAnalysis analysis_;
  std::vector<bool> highlighted_;  // empty = all
  int selected_ = -1;
  AxisUnit x_unit_, y_unit_;
  std::vector<int> drawn_;  // store indices of every drawn point, for hit testing

  QComboBox* x_combo_ = nullptr;
  QComboBox* y_combo_ = nullptr;
  QComboBox* colour_combo_ = nullptr;
  QCheckBox* x_log_ = nullptr;
  QCheckBox* y_log_ = nullptr;
  QCheckBox* show_unsuccessful_ = nullptr;
  QLineEdit* constraints_edit_ = nullptr;
  QLabel* constraint_error_ = nullptr;
  QCustomPlot* plot_ = nullptr;

  // Panning (middle button, or Ctrl + left) is done here: QCustomPlot's own
  // range drag is left-button only and would collide with the box zoom.
  bool panning_ = false;
  QPoint last_pan_pos_;
  QPoint press_pos_;
};

}  // namespace memfront
