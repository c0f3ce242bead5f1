#include "gui/main_window.h"

#include <QAction>
#include <QComboBox>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QTimer>
#include <QVBoxLayout>

#include "gui/compare_dialog.h"
#include "gui/detail_pane.h"
#include "gui/front_view.h"
#include "gui/parallel_view.h"
#include "gui/trial_store.h"
#include "gui/trial_table_model.h"

namespace memfront {
namespace {

constexpr int kMaxRecent = 10;
const char* const kRecentKey = "recent_files";

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent), store_(new TrialStore(this)) {
  setWindowTitle(tr("memfront viewer"));
  setAcceptDrops(true);
  refresh_timer_ = new QTimer(this);
  refresh_timer_->setSingleShot(true);
  refresh_timer_->setInterval(80);
  connect(refresh_timer_, &QTimer::timeout, this, &MainWindow::refresh_views);
  build_views();
  build_menus();

  connect(store_, &TrialStore::trials_appended, this, [this] { refresh_timer_->start(); });
  connect(store_, &TrialStore::file_problem, this, &MainWindow::on_problem);
  connect(store_, &TrialStore::loading_started, this, [this](const QString& path) {
    progress_->show();
    statusBar()->showMessage(tr("Loading %1…").arg(QFileInfo(path).fileName()));
  });
  connect(store_, &TrialStore::loading_finished, this, [this] {
    progress_->setVisible(store_->loading());
    if (!store_->loading()) statusBar()->clearMessage();
    refresh_timer_->start();
  });
  resize(1400, 900);
}

MainWindow::~MainWindow() = default;

void MainWindow::build_views() {
  model_ = new TrialTableModel(*store_, {}, this);
  filter_ = new TrialFilterModel(this);
  filter_->setSourceModel(model_);

  front_ = new FrontView(*store_);
  parallel_ = new ParallelView(*store_);
  tabs_ = new QTabWidget;
  tabs_->addTab(front_, tr("Pareto front"));
  tabs_->addTab(parallel_, tr("Parallel coordinates"));

  table_ = new QTableView;
  table_->setModel(filter_);
  table_->setSortingEnabled(true);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  table_->verticalHeader()->setDefaultSectionSize(20);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setStretchLastSection(true);
  filter_edit_ = new QLineEdit;
  filter_edit_->setPlaceholderText(tr("filter (any column)"));
  filter_edit_->setClearButtonEnabled(true);
  status_combo_ = new QComboBox;
  status_combo_->addItem(tr("any status"), QString());
  for (TrialStatus status : kAllTrialStatuses) {
    const QString name = QString::fromUtf8(to_string(status).data(), static_cast<qsizetype>(to_string(status).size()));
    status_combo_->addItem(name, name);
  }
  auto* table_box = new QWidget;
  auto* filter_row = new QHBoxLayout;
  filter_row->addWidget(filter_edit_, 1);
  filter_row->addWidget(status_combo_);
  auto* table_layout = new QVBoxLayout(table_box);
  table_layout->setContentsMargins(2, 2, 2, 2);
  table_layout->addLayout(filter_row);
  table_layout->addWidget(table_);

  auto* splitter = new QSplitter(Qt::Vertical);
  splitter->addWidget(tabs_);
  splitter->addWidget(table_box);
  splitter->setStretchFactor(0, 3);
  splitter->setStretchFactor(1, 2);
  setCentralWidget(splitter);

  detail_ = new DetailPane(*store_);
  auto* detail_dock = new QDockWidget(tr("Trial"), this);
  detail_dock->setObjectName("detail");
  detail_dock->setWidget(detail_);
  detail_dock->setMinimumWidth(380);
  addDockWidget(Qt::RightDockWidgetArea, detail_dock);

  problems_ = new QListWidget;
  auto* problems_dock = new QDockWidget(tr("Problems"), this);
  problems_dock->setObjectName("problems");
  problems_dock->setWidget(problems_);
  addDockWidget(Qt::BottomDockWidgetArea, problems_dock);
  problems_dock->hide();  // shown when the first problem arrives

  progress_ = new QProgressBar;
  progress_->setRange(0, 0);  // busy: the store does not know how far it is
  progress_->setMaximumWidth(160);
  progress_->hide();
  summary_ = new QLabel;
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(summary_);
  update_status();

  connect(filter_edit_, &QLineEdit::textChanged, filter_, &TrialFilterModel::set_text);
  connect(status_combo_, &QComboBox::currentIndexChanged, this,
          [this] { filter_->set_status(status_combo_->currentData().toString()); });
  connect(table_->selectionModel(), &QItemSelectionModel::selectionChanged, this, &MainWindow::on_table_selection);
  connect(front_, &FrontView::trial_selected, this, &MainWindow::select_trial);
  connect(parallel_, &ParallelView::brushed_changed, this, [this](const std::vector<int>& trials) {
    filter_->set_allowed_trials(trials);
    front_->set_highlighted(trials);
  });
}

void MainWindow::build_menus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  QAction* open = file->addAction(tr("&Open…"), this, [this] {
    const QStringList paths =
        QFileDialog::getOpenFileNames(this, tr("Open results"), {}, tr("Results (*.jsonl);;All files (*)"));
    if (!paths.isEmpty()) open_files(paths);
  });
  open->setShortcut(QKeySequence::Open);
  recent_menu_ = file->addMenu(tr("Open &recent"));
  rebuild_recent_menu();
  watch_action_ = file->addAction(tr("&Watch files"));
  watch_action_->setCheckable(true);
  watch_action_->setToolTip(tr("Show trials appended to the open files (a sweep in progress)"));
  connect(watch_action_, &QAction::toggled, store_, &TrialStore::set_watching);
  file->addSeparator();
  QAction* export_action = file->addAction(tr("&Export selected trial…"), this, &MainWindow::export_selected);
  export_action->setShortcut(QKeySequence(tr("Ctrl+E")));
  file->addAction(tr("Save &plot as…"), this, &MainWindow::save_plot)->setShortcut(QKeySequence(tr("Ctrl+Shift+S")));
  file->addSeparator();
  file->addAction(tr("&Quit"), this, &QWidget::close)->setShortcut(QKeySequence::Quit);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  compare_action_ = view->addAction(tr("&Compare selected trials"), this, &MainWindow::compare_selected);
  compare_action_->setEnabled(false);
  view->addAction(tr("&Reset plot view"), front_, &FrontView::reset_view);
  view->addAction(tr("Clear &brushes"), parallel_, &ParallelView::clear_brushes);
  table_->addAction(compare_action_);
  table_->setContextMenuPolicy(Qt::ActionsContextMenu);
}

void MainWindow::open_files(const QStringList& paths) {
  for (const QString& path : paths) store_->add_file(path);
  add_recent(paths);
}

void MainWindow::refresh_views() {
  // The objectives come with the first study file that loads.
  if (objectives_.empty() && !store_->files().empty()) {
    objectives_ = store_->default_objectives();
    model_->set_objectives(objectives_);
    front_->set_objectives(objectives_);  // refreshes
  } else {
    front_->refresh();
  }
  parallel_->set_data(objectives_, front_->analysis());
  update_status();
}

void MainWindow::update_status() {
  summary_->setText(summary());
}

QString MainWindow::summary() const {
  int skipped = 0;
  for (const LoadedFile& file : store_->files()) skipped += file.skipped;
  return tr("%1 trials from %2 files (%3 lines skipped)")
      .arg(store_->trial_count())
      .arg(store_->files().size())
      .arg(skipped);
}

QStringList MainWindow::problems() const {
  QStringList lines;
  for (int i = 0; i < problems_->count(); ++i) lines << problems_->item(i)->text();
  return lines;
}

void MainWindow::on_problem(const QString& path, const QString& message) {
  const QString line = message.contains(QFileInfo(path).fileName()) ? message : path + ": " + message;
  problems_->addItem(line);
  if (auto* dock = qobject_cast<QDockWidget*>(problems_->parentWidget())) dock->show();
  statusBar()->showMessage(line, 10000);
  update_status();
}

void MainWindow::select_trial(int store_index) {
  if (syncing_) return;
  syncing_ = true;
  selected_ = store_index;
  front_->select_trial(store_index);
  parallel_->set_selected(store_index);
  detail_->show_trial(store_index);
  // The table's rows are in store order, so the source row is the store index.
  if (store_index >= 0 && store_index < model_->rowCount()) {
    const QModelIndex row = filter_->mapFromSource(model_->index(store_index, 0));
    if (row.isValid()) {
      table_->selectionModel()->setCurrentIndex(
          row, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
      table_->scrollTo(row);
    }
  }
  syncing_ = false;
}

std::vector<int> MainWindow::selected_rows() const {
  std::vector<int> trials;
  for (const QModelIndex& row : table_->selectionModel()->selectedRows())
    trials.push_back(row.data(TrialTableModel::kTrialRole).toInt());
  return trials;
}

void MainWindow::on_table_selection() {
  const std::vector<int> rows = selected_rows();
  compare_action_->setEnabled(rows.size() >= 2 && rows.size() <= 4);
  if (syncing_) return;
  const QModelIndex current = table_->selectionModel()->currentIndex();
  if (current.isValid() && table_->selectionModel()->isRowSelected(current.row(), {}))
    select_trial(current.data(TrialTableModel::kTrialRole).toInt());
}

QString MainWindow::export_trial_to(int store_index, ExportFormat format, const QString& path) {
  if (store_index < 0 || store_index >= store_->trial_count()) return tr("no trial selected");
  const LoadedFile& file = store_->files()[store_->file_of(store_index)];
  std::string text;
  try {
    text = export_trial(store_->trial(store_index), format, ExportSource{file.path.toStdString(), file.header});
  } catch (const std::exception& error) {
    return QString::fromUtf8(error.what());
  }
  QFile out(path);
  // Unbuffered: a write that fails (a full disk) fails here, not unseen in close().
  if (!out.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Unbuffered)) {
    return tr("%1: %2").arg(path, out.errorString());
  }
  if (out.write(text.data(), qint64(text.size())) != qint64(text.size())) return tr("%1: %2").arg(path, out.errorString());
  return {};
}

void MainWindow::export_selected() {
  if (selected_ < 0) {
    statusBar()->showMessage(tr("Select a trial to export"), 5000);
    return;
  }
  QStringList formats;
  for (const ExportFormatName& entry : kExportFormats) formats << QString::fromUtf8(entry.name.data(), static_cast<qsizetype>(entry.name.size()));
  bool ok = false;
  const QString name = QInputDialog::getItem(this, tr("Export trial"), tr("Format:"), formats, 1, false, &ok);
  if (!ok) return;
  const ExportFormat format = *parse_export_format(name.toStdString());
  const QString suggested = QStringLiteral("%1-%2.%3").arg(QString::fromStdString(store_->trial(selected_).id), name,
                                                          QString::fromUtf8(export_format_name(format).suffix.data()));
  const QString path = QFileDialog::getSaveFileName(this, tr("Export trial"), suggested);
  if (path.isEmpty()) return;
  const QString error = export_trial_to(selected_, format, path);
  if (!error.isEmpty())
    QMessageBox::warning(this, tr("Export failed"), error);
  else
    statusBar()->showMessage(tr("Exported to %1").arg(path), 5000);
}

void MainWindow::save_plot() {
  QString filter;
  const QString path = QFileDialog::getSaveFileName(this, tr("Save plot"), QStringLiteral("front.png"),
                                                    tr("PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"), &filter);
  if (path.isEmpty()) return;
  if (!front_->save_plot(path)) QMessageBox::warning(this, tr("Save failed"), tr("Could not write %1").arg(path));
}

CompareDialog* MainWindow::compare_trials(std::vector<int> trials) {
  if (trials.size() < 2 || trials.size() > 4) return nullptr;
  auto* dialog = new CompareDialog(*store_, std::move(trials), this);
  dialog->setAttribute(Qt::WA_DeleteOnClose);
  dialog->show();
  return dialog;
}

void MainWindow::compare_selected() {
  compare_trials(selected_rows());
}

void MainWindow::add_recent(const QStringList& paths) {
  QSettings settings;
  QStringList recent = settings.value(kRecentKey).toStringList();
  for (const QString& path : paths) {
    const QString absolute = QFileInfo(path).absoluteFilePath();
    recent.removeAll(absolute);
    recent.prepend(absolute);
  }
  while (recent.size() > kMaxRecent) recent.removeLast();
  settings.setValue(kRecentKey, recent);
  rebuild_recent_menu();
}

void MainWindow::rebuild_recent_menu() {
  recent_menu_->clear();
  const QStringList recent = QSettings().value(kRecentKey).toStringList();
  for (const QString& path : recent)
    recent_menu_->addAction(path, this, [this, path] { open_files({path}); });
  recent_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  QStringList paths;
  for (const QUrl& url : event->mimeData()->urls())
    if (url.isLocalFile() && url.toLocalFile().endsWith(".jsonl")) paths << url.toLocalFile();
  if (paths.isEmpty()) {
    statusBar()->showMessage(tr("Drop .jsonl results files"), 5000);
    return;
  }
  open_files(paths);
  event->acceptProposedAction();
}

}  // namespace memfront
