// The viewer's windows against a real exhaustive sweep (results/exhaustive-small.jsonl,
// 288 trials) and against malformed files: the front drawn is the Pareto front
// computed directly, selection reaches every view, constraints recompute the
// front, exports equal `memfront export`, and bad files give a problem line,
// never a crash. Screenshots of the windows go to MEMFRONT_SCREENSHOTS.
#include <QAbstractItemModelTester>
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLabel>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTest>
#include <QTreeWidget>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/json_file.h"
#include "core/pareto.h"
#include "core/results.h"
#include "gui/compare_dialog.h"
#include "gui/detail_pane.h"
#include "gui/front_view.h"
#include "gui/main_window.h"
#include "gui/parallel_view.h"
#include "gui/trial_store.h"
#include "gui/trial_table_model.h"
#include "tuner/export.h"
#include "tuner/metrics.h"

using namespace memfront;

namespace {

const QString kSweep = QStringLiteral(MEMFRONT_SOURCE_DIR "/results/exhaustive-small.jsonl");
constexpr int kLoadTimeoutMs = 20000;

// The Pareto front of the objectives over the successful trials that have
// every objective, as store indices.
std::set<int> expected_front(const TrialStore& store, const std::vector<std::string>& objectives,
                             const std::function<bool(const TrialRecord&)>& keep = {}) {
  std::vector<ObjectivePoint> points;
  std::vector<int> index;
  for (int i = 0; i < store.trial_count(); ++i) {
    const TrialRecord& record = store.trial(i);
    if (record.status != TrialStatus::ok || (keep && !keep(record))) continue;
    ObjectivePoint point;
    for (const std::string& objective : objectives) {
      const bool maximize = objective.starts_with('-');
      const auto value = metric_value(record, maximize ? objective.substr(1) : objective);
      if (!value) break;
      point.push_back(maximize ? -*value : *value);
    }
    if (point.size() != objectives.size()) continue;
    points.push_back(point);
    index.push_back(i);
  }
  std::set<int> front;
  for (size_t p : pareto_front(points)) front.insert(index[p]);
  return front;
}

void screenshot(QWidget* widget, const QString& name) {
  QDir().mkpath(MEMFRONT_SCREENSHOTS);
  QVERIFY(widget->grab().save(QStringLiteral(MEMFRONT_SCREENSHOTS "/%1.png").arg(name)));
}

}  // namespace

class TestViewer : public QObject {
  Q_OBJECT
 private:
  QTemporaryDir dir_;
  QString sweep_;  // a copy of the sweep in dir_
  int sweep_trials_ = 0;

  // Opens the files in a fresh window and waits until every view has them.
  void load(MainWindow& window, const QStringList& paths) {
    QSignalSpy finished(&window.store(), &TrialStore::loading_finished);
    window.open_files(paths);
    QTRY_VERIFY_WITH_TIMEOUT(finished.count() >= paths.size() && !window.store().loading(), kLoadTimeoutMs);
    QTRY_COMPARE(int(window.front_view()->analysis().x.size()), window.store().trial_count());
  }

  QString write_file(const QString& name, const QByteArray& content) {
    const QString path = dir_.filePath(name);
    QFile file(path);
    file.open(QIODevice::WriteOnly);
    file.write(content);
    return path;
  }

 private slots:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);  // recent files go to a test-only QSettings
    QCoreApplication::setOrganizationName("memfront-test");
    QCoreApplication::setApplicationName("test_viewer");
    QVERIFY(dir_.isValid());
    sweep_ = dir_.filePath("exhaustive-small.jsonl");
    QVERIFY(QFile::copy(kSweep, sweep_));
    sweep_trials_ = int(read_results(sweep_.toStdString()).trials.size());
    QCOMPARE(sweep_trials_, 288);
  }

  void loads_and_draws_the_front() {
    MainWindow window;
    load(window, {sweep_});
    QCOMPARE(window.store().trial_count(), sweep_trials_);
    QVERIFY(window.summary().startsWith(QStringLiteral("288 trials from 1 files")));
    FrontView* front = window.front_view();
    const std::vector<std::string>& objectives = front->settings().objectives;
    QVERIFY(!objectives.empty());
    const std::vector<int>& drawn = front->analysis().front;
    QCOMPARE(std::set<int>(drawn.begin(), drawn.end()), expected_front(window.store(), objectives));
    QVERIFY(!drawn.empty());
    // The axes are labelled with their units.
    QVERIFY(front->plot()->xAxis->label().contains("peak_mem"));
    QVERIFY(front->plot()->xAxis->label().contains("MiB"));
    QVERIFY(front->plot()->yAxis->label().contains("ms"));
  }

  void selection_reaches_every_view() {
    MainWindow window;
    load(window, {sweep_});
    const int trial = window.front_view()->analysis().front.front();
    emit window.front_view()->trial_selected(trial);
    QCOMPARE(window.selected_trial(), trial);
    QCOMPARE(window.detail_pane()->trial(), trial);
    QVERIFY(window.detail_pane()->config_tree()->topLevelItemCount() > 0);
    QVERIFY(window.detail_pane()->memory_plot()->plottableCount() > 0);
    QVERIFY(window.detail_pane()->loss_plot()->graphCount() >= 1);
    QVERIFY(window.detail_pane()->prediction_table()->rowCount() > 0);
    QCOMPARE(window.table_view()->currentIndex().data(TrialTableModel::kTrialRole).toInt(), trial);

    // And back: selecting a table row selects the trial.
    const QModelIndex other = window.filter_model()->index(5, 0);
    window.table_view()->selectionModel()->setCurrentIndex(other, QItemSelectionModel::ClearAndSelect |
                                                                      QItemSelectionModel::Rows);
    QCOMPARE(window.selected_trial(), other.data(TrialTableModel::kTrialRole).toInt());
    QCOMPARE(window.front_view()->selected_trial(), window.selected_trial());
  }

  void constraint_recomputes_the_front() {
    MainWindow window;
    load(window, {sweep_});
    FrontView* front = window.front_view();
    const std::vector<int> before = front->analysis().front;
    double largest = 0;
    for (int i : before) largest = std::max(largest, *metric_value(window.store().trial(i), "peak_mem"));
    // Excludes the front's largest-memory point, so the front must change.
    const QString limit = QString::number(largest - 1, 'f', 0);
    front->set_constraints("peak_mem < " + limit + "; step_time < 10s");
    QVERIFY(front->constraint_error().isEmpty());
    const std::vector<int>& after = front->analysis().front;
    QVERIFY(after != before);
    QCOMPARE(std::set<int>(after.begin(), after.end()),
             expected_front(window.store(), front->settings().objectives, [&](const TrialRecord& r) {
               return *metric_value(r, "peak_mem") < largest - 1 && *metric_value(r, "step_time") < 10;
             }));

    front->set_constraints("peak_mem <=");
    QVERIFY(!front->constraint_error().isEmpty());
    front->set_constraints("");
    QCOMPARE(front->analysis().front, before);
  }

  void export_matches_memfront_export() {
    MainWindow window;
    load(window, {sweep_});
    const int trial = window.front_view()->analysis().front.front();
    const QString path = dir_.filePath("exported.json");
    QCOMPARE(window.export_trial_to(trial, ExportFormat::deepspeed, path), QString());
    QFile file(path);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const ResultsFile results = read_results(sweep_.toStdString());
    const std::string expected =
        export_trial(window.store().trial(trial), ExportFormat::deepspeed, ExportSource{sweep_.toStdString(), results.header});
    QCOMPARE(file.readAll().toStdString(), expected);
    QVERIFY(!window.export_trial_to(trial, ExportFormat::deepspeed, dir_.filePath("no/such/dir/x.json")).isEmpty());
    // A write that fails is reported, not taken for an export.
    const QString full = window.export_trial_to(trial, ExportFormat::deepspeed, "/dev/full");
    QVERIFY2(full.startsWith("/dev/full: "), qPrintable(full));
  }

  void table_model_is_sound() {
    MainWindow window;
    QAbstractItemModelTester tester(window.filter_model(), QAbstractItemModelTester::FailureReportingMode::QtTest);
    load(window, {sweep_});
    QCOMPARE(window.filter_model()->rowCount(), sweep_trials_);
    // Every trial of the recorded sweep ended ok.
    window.filter_model()->set_status("failed");
    QCOMPARE(window.filter_model()->rowCount(), 0);
    window.filter_model()->set_status("ok");
    QCOMPARE(window.filter_model()->rowCount(), sweep_trials_);
    window.filter_model()->set_text("zero3");
    QVERIFY(window.filter_model()->rowCount() > 0);
    QVERIFY(window.filter_model()->rowCount() < sweep_trials_);
    window.filter_model()->set_text("");
    window.filter_model()->set_status("");
    window.table_view()->sortByColumn(2, Qt::DescendingOrder);
    QCOMPARE(window.filter_model()->rowCount(), sweep_trials_);
  }

  void brushing_filters_table_and_front() {
    MainWindow window;
    load(window, {sweep_});
    ParallelView* parallel = window.parallel_view();
    QVERIFY(parallel->axis_count() >= 2);
    parallel->brush(0, 0.0, 0.3);
    QVERIFY(!parallel->brushed().empty());
    QCOMPARE(window.filter_model()->rowCount(), int(parallel->brushed().size()));
    parallel->clear_brushes();
    QCOMPARE(window.filter_model()->rowCount(), sweep_trials_);
  }

  void compare_highlights_differences() {
    MainWindow window;
    load(window, {sweep_});
    CompareDialog* dialog = window.compare_trials({0, 1, 2});
    QVERIFY(dialog);
    QCOMPARE(dialog->table()->columnCount(), 3);
    int highlighted = 0;
    for (int r = 0; r < dialog->table()->rowCount(); ++r)
      if (dialog->table()->item(r, 0)->background().style() != Qt::NoBrush) ++highlighted;
    QVERIFY(highlighted > 0);
    QVERIFY(highlighted < dialog->table()->rowCount());  // the model shape is the same
    QVERIFY(!window.compare_trials({0}));
  }

  void malformed_files_give_problems() {
    QFile sweep(kSweep);
    QVERIFY(sweep.open(QIODevice::ReadOnly));
    QList<QByteArray> lines = sweep.readAll().split('\n');
    QByteArray corrupted;
    for (int i = 0; i < 12; ++i) corrupted += (i == 5 ? QByteArray("{\"config\": [broken") : lines[i]) + '\n';
    const QStringList fixtures = {
        write_file("empty.jsonl", ""),
        write_file("garbage.jsonl", "this is not json\n\x01\x02{{{\n"),
        write_file("foreign.jsonl", "{\"schema\":\"other.results/7\",\"study\":\"x\"}\n{\"a\":1}\n"),
        write_file("corrupted.jsonl", corrupted),
    };
    for (const QString& fixture : fixtures) {
      MainWindow window;
      load(window, {fixture});
      QVERIFY2(!window.problems().isEmpty(), qPrintable(fixture));
    }
    MainWindow window;
    load(window, {fixtures.last()});
    QCOMPARE(window.store().trial_count(), 10);  // every line but the header and the broken one
    QVERIFY(window.summary().contains("1 lines skipped"));
  }

  void watch_mode_appends() {
    const ResultsFile sweep = read_results(kSweep.toStdString());
    const QString path = dir_.filePath("growing.jsonl");
    ResultsWriter writer = ResultsWriter::create(path.toStdString(), sweep.header);
    for (int i = 0; i < 3; ++i) writer.append(sweep.trials[i]);
    MainWindow window;
    load(window, {path});
    QCOMPARE(window.store().trial_count(), 3);
    window.store().set_watching(true);
    for (int i = 3; i < 8; ++i) writer.append(sweep.trials[i]);
    QTRY_COMPARE_WITH_TIMEOUT(window.store().trial_count(), 8, 10000);
    QTRY_COMPARE(window.filter_model()->rowCount(), 8);
    QTRY_COMPARE(int(window.front_view()->analysis().x.size()), 8);
  }

  // A trial with a trace shows rank 0's memory over time; one without says so.
  void trace_gives_a_memory_timeline() {
    const ResultsFile sweep = read_results(sweep_.toStdString());
    const QString path = dir_.filePath("traced.jsonl");
    {
      ResultsWriter writer = ResultsWriter::create(path.toStdString(), sweep.header);
      TrialRecord traced = sweep.trials[0];
      traced.trace = "traced.trace.json";
      writer.append(traced);
      writer.append(sweep.trials[1]);
    }
    nlohmann::json events = nlohmann::json::array();
    for (int step = 0; step < 3; ++step) {
      nlohmann::json args = {{"total", (step + 1) * 3.0 * 1024 * 1024}};
      for (MemCategory c : kAllMemCategories) args[std::string(to_string(c))] = (step + 1) * 1024.0 * 1024 / 2;
      events.push_back({{"ph", "C"}, {"name", "memory"}, {"pid", 0}, {"tid", 0}, {"ts", step * 1000.0}, {"args", args}});
      events.push_back({{"ph", "C"}, {"name", "memory"}, {"pid", 1}, {"tid", 0}, {"ts", step * 1000.0}, {"args", args}});
    }
    write_file("traced.trace.json", QByteArray::fromStdString(nlohmann::json{{"traceEvents", events}}.dump()));

    MainWindow window;
    load(window, {path});
    DetailPane* pane = window.detail_pane();
    pane->show_trial(0);
    QCOMPARE(pane->timeline_plot()->graphCount(), kMemCategoryCount + 1);
    QCOMPARE(pane->timeline_plot()->graph(0)->data()->size(), 3);  // rank 0's counters only
    QCOMPARE(pane->timeline_plot()->graph(kMemCategoryCount)->data()->at(2)->value, 9.0);  // total, MiB
    window.resize(1500, 950);
    screenshot(pane, "detail_pane_timeline");
    pane->show_trial(1);
    QVERIFY(pane->timeline_plot()->isHidden());
    // A trace nested too deep is refused by the one JSON reader, not walked into a stack overflow.
    write_file("traced.trace.json", QByteArray(100000, '[') + QByteArray(100000, ']'));
    pane->show_trial(0);
    QVERIFY(pane->timeline_plot()->isHidden());
    QVERIFY2(pane->trace_label()->text().contains(QStringLiteral("nested deeper than %1 levels").arg(kMaxJsonDepth)),
             qPrintable(pane->trace_label()->text()));
  }

  void render_writes_a_png() {
    const QString viewer = QCoreApplication::applicationDirPath() + "/../gui/memfront-viewer";
    if (!QFileInfo::exists(viewer)) QSKIP("memfront-viewer is not built beside the tests");
    const QString png = dir_.filePath("front.png");
    QCOMPARE(QProcess::execute(viewer, {"--render", png, "--width", "900", "--height", "600", sweep_}), 0);
    QVERIFY(QFileInfo(png).size() > 1000);
    const QString svg = dir_.filePath("front.svg");
    QCOMPARE(QProcess::execute(viewer, {"--render", svg, "--x", "comm_bytes", "--y", "loss_delta", sweep_}), 0);
    QVERIFY(QFileInfo(svg).size() > 1000);
    QCOMPARE(QProcess::execute(viewer, {"--render", png, "--width", "zero", sweep_}), 2);
    QCOMPARE(QProcess::execute(viewer, {"--render", png, dir_.filePath("empty.jsonl")}), 2);
  }

  // The command line is CLI11's, as the other programs' are: --help and
  // --version answer (without a display), an unknown option is exit 2.
  void command_line_answers_help_and_version() {
    const QString viewer = QCoreApplication::applicationDirPath() + "/../gui/memfront-viewer";
    if (!QFileInfo::exists(viewer)) QSKIP("memfront-viewer is not built beside the tests");
    auto run = [&](const QStringList& args) {
      QProcess process;
      process.start(viewer, args);
      process.waitForFinished(30000);
      return std::make_pair(process.exitCode(), QString::fromUtf8(process.readAllStandardOutput() + process.readAllStandardError()));
    };
    const auto [help_code, help] = run({"--help"});
    QCOMPARE(help_code, 0);
    QVERIFY2(help.contains("--render"), qPrintable(help));
    const auto [version_code, version] = run({"--version"});
    QCOMPARE(version_code, 0);
    QCOMPARE(version.trimmed(), QStringLiteral("memfront-viewer " MEMFRONT_VERSION));
    const auto [unknown_code, unknown] = run({"--bogus"});
    QCOMPARE(unknown_code, 2);
    QVERIFY2(unknown.contains("--bogus"), qPrintable(unknown));
    QCOMPARE(run({"--width", "900", sweep_}).first, 2);  // --width needs --render
  }

  void screenshots() {
    MainWindow window;
    window.resize(1500, 950);
    window.show();
    load(window, {sweep_});
    window.select_trial(window.front_view()->analysis().front.at(2));
    QTest::qWait(100);
    screenshot(&window, "main_window");
    screenshot(window.front_view(), "front_view");
    screenshot(window.detail_pane(), "detail_pane");
    auto* tabs = qobject_cast<QTabWidget*>(window.parallel_view()->parentWidget()->parentWidget());
    QVERIFY(tabs);
    tabs->setCurrentWidget(window.parallel_view());
    window.parallel_view()->brush(1, 0.0, 0.4);
    QTest::qWait(50);
    screenshot(window.parallel_view(), "parallel_view");
  }
};

QTEST_MAIN(TestViewer)
#include "test_viewer.moc"
