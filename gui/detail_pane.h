#pragma once
// DetailPane: everything about the selected trial: its configuration (a tree
// of the config JSON), per-rank peak memory stacked by category, the step time
// split into compute / communication / exposed communication / recompute, its
// loss curve beside the reference trial's (the one of the same file whose
// loss_delta is 0), the cost model's prediction beside the measurement, and,
// when the trial has a trace, rank 0's memory by category over time.
#include <QWidget>

class QCustomPlot;
class QLabel;
class QTableWidget;
class QTreeWidget;

namespace memfront {

class TrialStore;

class DetailPane : public QWidget {
  Q_OBJECT
 public:
  explicit DetailPane(const TrialStore& store, QWidget* parent = nullptr);

  void show_trial(int store_index);  // -1 clears
  int trial() const { return trial_; }

  QTreeWidget* config_tree() const { return config_tree_; }
  QCustomPlot* memory_plot() const { return memory_plot_; }
  QCustomPlot* time_plot() const { return time_plot_; }
  QCustomPlot* loss_plot() const { return loss_plot_; }
  QTableWidget* prediction_table() const { return prediction_table_; }
  QCustomPlot* timeline_plot() const { return timeline_plot_; }
  QLabel* trace_label() const { return trace_label_; }  // why there is no timeline

 private:
  void fill_config();
  void fill_memory();
  void fill_time();
  void fill_loss();
  void fill_prediction();
  void fill_timeline();
  int reference_of(int store_index) const;  // -1 when the file has none

  const TrialStore& store_;
  int trial_ = -1;
  QLabel* title_ = nullptr;
  QTreeWidget* config_tree_ = nullptr;
  QCustomPlot* memory_plot_ = nullptr;
  QCustomPlot* time_plot_ = nullptr;
  QCustomPlot* loss_plot_ = nullptr;
  QTableWidget* prediction_table_ = nullptr;
  QLabel* trace_label_ = nullptr;  // why there is no timeline, when there is none
  QCustomPlot* timeline_plot_ = nullptr;
};

}  // namespace memfront
