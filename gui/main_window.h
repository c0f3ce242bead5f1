#pragma once
// MainWindow of memfront-viewer: the front view (centre, with the parallel
// coordinates in a tab beside it), the trial table below, the selected
// trial's details in a dock on the right and the load problems in a dock
// below. Selection is shared: picking a trial anywhere shows it everywhere.
#include <QMainWindow>
#include <QStringList>

#include <string>
#include <vector>

#include "tuner/export.h"

class QAction;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QMenu;
class QProgressBar;
class QTableView;
class QTabWidget;
class QTimer;

namespace memfront {

class CompareDialog;
class DetailPane;
class FrontView;
class ParallelView;
class TrialFilterModel;
class TrialStore;
class TrialTableModel;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Loads in the background; the views fill in as the trials arrive.
  void open_files(const QStringList& paths);
  // Shows a trial in every view (-1 clears).
  void select_trial(int store_index);
  // Writes the trial exported as `format` (the same text as `memfront export`);
  // returns an error line, empty on success.
  QString export_trial_to(int store_index, ExportFormat format, const QString& path);
  // Opens the comparison of these trials (2 to 4); nullptr when out of range.
  CompareDialog* compare_trials(std::vector<int> trials);

  TrialStore& store() { return *store_; }
  FrontView* front_view() const { return front_; }
  ParallelView* parallel_view() const { return parallel_; }
  DetailPane* detail_pane() const { return detail_; }
  QTableView* table_view() const { return table_; }
  TrialFilterModel* filter_model() const { return filter_; }
  QStringList problems() const;
  QString summary() const;  // "N trials from M files (K lines skipped)"
  int selected_trial() const { return selected_; }

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void build_menus();
  void build_views();
  void refresh_views();  // after trials arrive or objectives change
  void update_status();
  void add_recent(const QStringList& paths);
  void rebuild_recent_menu();
  void on_problem(const QString& path, const QString& message);
  void on_table_selection();
  void export_selected();
  void save_plot();
  void compare_selected();
  std::vector<int> selected_rows() const;  // store indices of the table's selected rows

  TrialStore* store_ = nullptr;
  TrialTableModel* model_ = nullptr;
  TrialFilterModel* filter_ = nullptr;
  FrontView* front_ = nullptr;
  ParallelView* parallel_ = nullptr;
  DetailPane* detail_ = nullptr;
  QTableView* table_ = nullptr;
  QTabWidget* tabs_ = nullptr;
  QLineEdit* filter_edit_ = nullptr;
  QComboBox* status_combo_ = nullptr;
  QListWidget* problems_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* summary_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QAction* watch_action_ = nullptr;
  QAction* compare_action_ = nullptr;
  QTimer* refresh_timer_ = nullptr;  // coalesces bursts of appended trials into one redraw
  std::vector<std::string> objectives_;
  int selected_ = -1;
  bool syncing_ = false;  // set while a selection is being propagated, so it does not bounce back
};

}  // namespace memfront
