// The viewer's data layer without widgets: the tolerant results scan, the
// store (loading and watching a file being appended to), the table and filter
// models (checked by QAbstractItemModelTester while rows arrive) and the front
// analysis. Results files are written at run time into a temporary directory:
// good ones through ResultsWriter, broken ones as raw bytes.
#include <QAbstractItemModelTester>
#include <QElapsedTimer>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include <random>

#include "core/pareto.h"
#include "core/results.h"
#include "gui/front_analysis.h"
#include "gui/front_view.h"
#include "gui/trial_store.h"
#include "gui/trial_table_model.h"
#include "tests/comma_locale.h"

using namespace memfront;

namespace {

ResultsHeader make_header() {
  ResultsHeader header;
  header.study = "viewer-test";
  header.memfront_version = "0.1.0";
  header.created = "2026-11-23T02:10:00Z";
  header.study_spec = {{"objectives", {{{"goal", "min"}, {"metric", "peak_mem"}}, {{"goal", "min"}, {"metric", "step_time"}}}}};
  return header;
}

// A trial with the metrics the viewer reads: peak memory in MiB, step time in ms.
TrialRecord make_trial(const std::string& id, const std::string& strategy, int every, double peak_mib,
                       double step_ms, TrialStatus status = TrialStatus::ok) {
  TrialRecord record;
  record.id = id;
  const nlohmann::json config = {{"world", 2}, {"shard", {{"strategy", strategy}}}, {"checkpoint", {{"every", every}}}};
  record.config = parse_config(config, "make_trial");
  record.status = status;
  if (status != TrialStatus::ok) record.error = "failed on purpose";
  record.provenance = nlohmann::json::object();
  if (status == TrialStatus::ok) {
    TrialMetrics metrics;
    metrics.peak_total_max = static_cast<uint64_t>(peak_mib * 1024 * 1024);
    metrics.step_time_s.median = step_ms / 1e3;
    metrics.step_time_s.count = 1;
    metrics.loss_delta = 0.01;
    record.metrics = metrics;
  }
  return record;
}

std::string line_of(const TrialRecord& record) { return to_json(record).dump() + "\n"; }
std::string header_line() { return to_json(make_header()).dump() + "\n"; }

void write_bytes(const QString& path, const std::string& bytes, QIODevice::OpenMode mode = QIODevice::WriteOnly) {
  QFile file(path);
  QVERIFY(file.open(mode));
  QCOMPARE(file.write(bytes.data(), static_cast<qint64>(bytes.size())), static_cast<qint64>(bytes.size()));
}

// The hand-made front fixture: a dominates b; a, c, d, e trade memory for
// time; f failed (no metrics).
std::vector<TrialRecord> fixture_trials() {
  return {
      make_trial("a", "ddp", 0, 100, 10),   make_trial("b", "ddp", 1, 120, 12),
      make_trial("c", "zero1", 0, 80, 15),  make_trial("d", "zero2", 2, 60, 30),
      make_trial("e", "zero3", 4, 40, 50),  make_trial("f", "zero3", 1, 10, 1, TrialStatus::failed),
  };
}

QString write_results(const QTemporaryDir& dir, const QString& name, const std::vector<TrialRecord>& trials) {
  const QString path = dir.filePath(name);
  ResultsWriter writer = ResultsWriter::create(path.toStdString(), make_header());
  for (const TrialRecord& trial : trials) writer.append(trial);
  return path;
}

std::vector<std::string> ids_of(const TrialStore& store, const std::vector<int>& indices) {
  std::vector<std::string> ids;
  for (int index : indices) ids.push_back(store.trial(index).id);
  return ids;
}

}  // namespace

class TestGuiModels : public QObject {
  Q_OBJECT

 private slots:
  void scan_good_file() {
    QTemporaryDir dir;
    const QString path = write_results(dir, "good.jsonl", fixture_trials());
    const ResultsScan scan = scan_results(path.toStdString());
    QVERIFY(scan.problems.empty());
    QCOMPARE(scan.file.trials.size(), size_t{6});
    QCOMPARE(scan.file.header.study, std::string("viewer-test"));
    QCOMPARE(scan.bytes_consumed, static_cast<uint64_t>(QFileInfo(path).size()));
    QVERIFY(!scan.file.truncated_tail);
  }

  void scan_truncated_tail() {
    QTemporaryDir dir;
    const QString path = dir.filePath("tail.jsonl");
    const std::string complete = header_line() + line_of(make_trial("a", "ddp", 0, 1, 1));
    const std::string partial = line_of(make_trial("b", "ddp", 0, 1, 1)).substr(0, 40);
    write_bytes(path, complete + partial);
    const ResultsScan scan = scan_results(path.toStdString());
    QCOMPARE(scan.file.trials.size(), size_t{1});
    QVERIFY(scan.problems.empty());
    QVERIFY(scan.file.truncated_tail.has_value());
    QVERIFY(QString::fromStdString(*scan.file.truncated_tail).contains("tail.jsonl:3"));
    QCOMPARE(scan.bytes_consumed, static_cast<uint64_t>(complete.size()));
  }

  void scan_corrupted_middle_line() {
    QTemporaryDir dir;
    const QString path = dir.filePath("middle.jsonl");
    std::string bad = line_of(make_trial("b", "ddp", 0, 1, 1));
    bad.replace(bad.find("\"status\":\"ok\""), 13, "\"status\":\"great\"");
    write_bytes(path, header_line() + line_of(make_trial("a", "ddp", 0, 1, 1)) + bad + "{not json\n" +
                          line_of(make_trial("c", "ddp", 0, 1, 1)));
    const ResultsScan scan = scan_results(path.toStdString());
    QCOMPARE(scan.file.trials.size(), size_t{2});
    QCOMPARE(scan.skipped, 2);
    QCOMPARE(scan.problems.size(), size_t{2});
    QVERIFY2(QString::fromStdString(scan.problems[0]).contains("middle.jsonl:3: /status"), scan.problems[0].c_str());
    QVERIFY2(QString::fromStdString(scan.problems[1]).contains("middle.jsonl:4:3: not valid JSON"), scan.problems[1].c_str());
  }

  void scan_broken_files() {
    QTemporaryDir dir;
    const QString empty = dir.filePath("empty.jsonl");
    write_bytes(empty, "");
    ResultsScan scan = scan_results(empty.toStdString());
    QCOMPARE(scan.problems.size(), size_t{1});
    QVERIFY(QString::fromStdString(scan.problems[0]).contains("empty results file"));

    const QString foreign = dir.filePath("foreign.jsonl");
    std::string header = header_line();
    header.replace(header.find("memfront.results/1"), 18, "memfront.results/9");
    write_bytes(foreign, header + line_of(make_trial("a", "ddp", 0, 1, 1)));
    scan = scan_results(foreign.toStdString());
    QVERIFY(scan.file.trials.empty());
    QCOMPARE(scan.problems.size(), size_t{1});
    QVERIFY2(QString::fromStdString(scan.problems[0]).contains("foreign.jsonl:1: /schema: unsupported schema"),
             scan.problems[0].c_str());

    const QString garbage = dir.filePath("garbage.bin");
    std::string bytes;
    std::mt19937 rng(7);
    for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>(rng()));
    write_bytes(garbage, bytes);
    scan = scan_results(garbage.toStdString());
    QVERIFY(scan.file.trials.empty());
    QVERIFY(!scan.problems.empty() || scan.file.truncated_tail);

    scan = scan_results(dir.filePath("missing.jsonl").toStdString());
    QCOMPARE(scan.problems.size(), size_t{1});
    QVERIFY(QString::fromStdString(scan.problems[0]).contains("cannot read"));
  }

  void scan_from_offset_numbers_lines_from_the_start() {
    QTemporaryDir dir;
    const QString path = dir.filePath("offset.jsonl");
    const std::string first = header_line() + line_of(make_trial("a", "ddp", 0, 1, 1));
    write_bytes(path, first + "[]\n" + line_of(make_trial("b", "ddp", 0, 1, 1)));
    const ResultsScan scan = scan_results(path.toStdString(), first.size(), make_header());
    QCOMPARE(scan.file.trials.size(), size_t{1});
    QCOMPARE(scan.file.trials[0].id, std::string("b"));
    QCOMPARE(scan.problems.size(), size_t{1});
    QVERIFY2(QString::fromStdString(scan.problems[0]).contains("offset.jsonl:3:"), scan.problems[0].c_str());
  }

  void store_reports_problems_and_loads_in_background() {
    QTemporaryDir dir;
    const QString good = write_results(dir, "good.jsonl", fixture_trials());
    const QString empty = dir.filePath("empty.jsonl");
    write_bytes(empty, "");
    TrialStore store;
    QSignalSpy finished(&store, &TrialStore::loading_finished);
    QSignalSpy problems(&store, &TrialStore::file_problem);
    QSignalSpy appended(&store, &TrialStore::trials_appended);
    store.add_file(good);
    store.add_file(empty);
    store.add_file(good);  // ignored: already loading
    QVERIFY(store.loading());
    QTRY_COMPARE(finished.count(), 2);
    QVERIFY(!store.loading());
    QCOMPARE(store.trial_count(), 6);
    QCOMPARE(appended.count(), 1);
    QCOMPARE(problems.count(), 1);
    QCOMPARE(store.files().size(), size_t{2});
    QCOMPARE(store.default_objectives(), (std::vector<std::string>{"peak_mem", "step_time"}));
  }

  void watched_file_appends() {
    QTemporaryDir dir;
    const QString path = dir.filePath("live.jsonl");
    write_bytes(path, header_line() + line_of(make_trial("t1", "ddp", 0, 1, 1)) + line_of(make_trial("t2", "ddp", 1, 1, 1)));
    TrialStore store;
    store.add_file_now(path);
    QCOMPARE(store.trial_count(), 2);

    TrialTableModel model(store, store.default_objectives());
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    TrialFilterModel filter;
    filter.setSourceModel(&model);
    QAbstractItemModelTester filter_tester(&filter, QAbstractItemModelTester::FailureReportingMode::QtTest);
    filter.sort(2);

    store.set_watching(true);
    QSignalSpy appended(&store, &TrialStore::trials_appended);
    write_bytes(path, line_of(make_trial("t3", "zero1", 0, 1, 1)) + line_of(make_trial("t4", "zero2", 0, 1, 1)),
                QIODevice::Append);
    QTRY_COMPARE(store.trial_count(), 4);
    QCOMPARE(appended.count(), 1);
    QCOMPARE(model.rowCount(), 4);

    const std::string fifth = line_of(make_trial("t5", "zero3", 2, 1, 1));
    write_bytes(path, fifth.substr(0, 30), QIODevice::Append);
    QTest::qWait(300);
    QCOMPARE(store.trial_count(), 4);
    write_bytes(path, fifth.substr(30), QIODevice::Append);
    QTRY_COMPARE(store.trial_count(), 5);
    QCOMPARE(model.rowCount(), 5);
    QVERIFY(store.files()[0].problems.isEmpty());
    // shard.strategy and checkpoint.every vary; world and shard.group do not.
    QStringList headers;
    for (int c = 0; c < model.columnCount(); ++c) headers << model.headerData(c, Qt::Horizontal).toString();
    QCOMPARE(headers, (QStringList{"id", "status", "peak_mem", "step_time", "checkpoint.every", "shard.strategy"}));
  }

  void table_filters_and_sorts() {
    QTemporaryDir dir;
    std::vector<TrialRecord> trials = fixture_trials();
    const QString first = write_results(dir, "one.jsonl", {trials.begin(), trials.begin() + 3});
    const QString second = write_results(dir, "two.jsonl", {trials.begin() + 3, trials.end()});
    TrialStore store;
    store.add_file_now(first);
    TrialTableModel model(store, {"peak_mem", "step_time"});
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    TrialFilterModel filter;
    filter.setSourceModel(&model);
    QAbstractItemModelTester filter_tester(&filter, QAbstractItemModelTester::FailureReportingMode::QtTest);
    store.add_file_now(second);  // adds rows, the file column and knob columns
    QCOMPARE(model.rowCount(), 6);
    QCOMPARE(model.headerData(0, Qt::Horizontal).toString(), QString("file"));
    QCOMPARE(model.index(4, 0).data().toString(), QString("two.jsonl"));
    QVERIFY2(model.index(0, 3).data().toString().contains("MiB"), qPrintable(model.index(0, 3).data().toString()));
    QCOMPARE(model.index(0, 3).data(TrialTableModel::kSortRole).toDouble(), 100.0 * 1024 * 1024);

    filter.sort(3);  // peak_mem ascending; the failed trial has none and sorts last
    QStringList order;
    for (int r = 0; r < filter.rowCount(); ++r) order << filter.index(r, 1).data().toString();
    QCOMPARE(order, (QStringList{"e", "d", "c", "a", "b", "f"}));

    filter.set_text("ZERO");
    QCOMPARE(filter.rowCount(), 4);
    filter.set_text("");
    filter.set_status("failed");
    QCOMPARE(filter.rowCount(), 1);
    QCOMPARE(filter.index(0, 1).data().toString(), QString("f"));
    filter.set_status("");
    filter.set_allowed_trials({0, 1});
    QCOMPARE(filter.rowCount(), 2);
  }

  void front_analysis() {
    QTemporaryDir dir;
    TrialStore store;
    store.add_file_now(write_results(dir, "front.jsonl", fixture_trials()));
    FrontSettings settings;
    settings.objectives = {"peak_mem", "step_time"};
    FrontAnalysis analysis = analyse(store, settings);
    QVERIFY(analysis.error.isEmpty());
    // b is dominated by a; f failed and has no metrics. Sorted by peak_mem.
    QCOMPARE(ids_of(store, analysis.front), (std::vector<std::string>{"e", "d", "c", "a"}));

    settings.constraints = {"step_time < 40ms"};
    analysis = analyse(store, settings);
    QCOMPARE(ids_of(store, analysis.front), (std::vector<std::string>{"d", "c", "a"}));
    QVERIFY(!analysis.feasible[4]);
    QVERIFY(!analysis.feasible[5]);  // lacks the metric

    settings.constraints = {"shard.strategy != \"zero2\""};
    analysis = analyse(store, settings);
    QCOMPARE(ids_of(store, analysis.front), (std::vector<std::string>{"e", "c", "a"}));

    settings.constraints = {"step_time <"};
    analysis = analyse(store, settings);
    QVERIFY(!analysis.error.isEmpty());
    QCOMPARE(analysis.front.size(), size_t{4});

    // An unknown name is reported with the closest known one, not a constraint nothing meets.
    settings.constraints = {"step_tme < 40ms"};
    analysis = analyse(store, settings);
    QCOMPARE(analysis.error, QStringLiteral("constraint 1: unknown metric 'step_tme'; did you mean 'step_time'?"));
    QCOMPARE(analysis.front.size(), size_t{4});
    settings.constraints = {"metrics.step_time_s.median < 40ms"};  // the column name pandas shows
    analysis = analyse(store, settings);
    QCOMPARE(ids_of(store, analysis.front), (std::vector<std::string>{"d", "c", "a"}));

    settings.constraints.clear();
    settings.colour_by = "shard.strategy";
    analysis = analyse(store, settings);
    QCOMPARE(analysis.groups, (std::vector<QString>{"ddp", "zero1", "zero2", "zero3"}));
    QCOMPARE(analysis.colour_group, (std::vector<int>{0, 0, 1, 2, 3, 3}));
    settings.colour_by = "status";
    settings.show_unsuccessful = false;
    analysis = analyse(store, settings);
    QCOMPARE(analysis.groups, (std::vector<QString>{"failed", "ok"}));
    QVERIFY(!analysis.shown[5]);
    QCOMPARE(analysis.x[0], 100.0 * 1024 * 1024);
    QVERIFY(std::isnan(analysis.x[5]));
  }

  void axis_units_come_from_the_registry() {
    // Bug: any name ending in _s was labelled seconds, so tokens_per_s showed "[s]".
    QCOMPARE(axis_unit_for("tokens_per_s", 12345).unit, QStringLiteral("tokens/s"));
    QCOMPARE(axis_unit_for("tokens_per_s", 12345).divisor, 1.0);
    QCOMPARE(axis_unit_for("gflops", 3).unit, QStringLiteral("GFLOP/s"));
    QCOMPARE(axis_unit_for("metrics.phase_s.backward", 0.5).unit, QStringLiteral("ms"));
    QCOMPARE(axis_unit_for("peak_mem", 3.0 * (1 << 20)).unit, QStringLiteral("MiB"));
    QCOMPARE(axis_unit_for("loss_delta", 0.1).unit, QString());
  }

  // Qt runs the viewer under the user's locale. Bug: where the decimal mark
  // is ',', the constraint box read "30.5ms" as 30 ms and d (30 ms) failed it.
  void front_constraint_under_comma_locale() {
    test_support::CommaDecimalLocale locale;
    if (!locale.active()) QSKIP(test_support::kMissingCommaLocale);
    QTemporaryDir dir;
    TrialStore store;
    store.add_file_now(write_results(dir, "front.jsonl", fixture_trials()));
    FrontSettings settings;
    settings.objectives = {"peak_mem", "step_time"};
    settings.constraints = {"step_time < 30.5ms"};
    const FrontAnalysis analysis = analyse(store, settings);
    QVERIFY2(analysis.error.isEmpty(), qPrintable(analysis.error));
    QCOMPARE(ids_of(store, analysis.front), (std::vector<std::string>{"d", "c", "a"}));
  }

  // Not a pass/fail check: prints how long analyse() and pareto_front take on
  // 100k trials, for reading in the log.
  void timing_on_100k_trials() {
    QTemporaryDir dir;
    const QString path = dir.filePath("big.jsonl");
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const char* strategies[] = {"ddp", "zero1", "zero2", "zero3"};
    std::string text = header_line();
    for (int i = 0; i < 100000; ++i) {
      const double u = unit(rng);
      std::string id = "t";  // appended: g++ 12 misreports "t" + std::to_string(i) (-Wrestrict)
      id += std::to_string(i);
      text += line_of(make_trial(id, strategies[i % 4], i % 5, 100 + 1000 * u,
                                 10 + 100 * (1 - u) + 20 * unit(rng)));
    }
    write_bytes(path, text);
    TrialStore store;
    QElapsedTimer timer;
    timer.start();
    store.add_file_now(path);
    qInfo("load of 100k trials: %lld ms", static_cast<long long>(timer.elapsed()));
    QCOMPARE(store.trial_count(), 100000);

    FrontSettings settings;
    settings.objectives = {"peak_mem", "step_time", "-loss_delta"};
    settings.constraints = {"peak_mem <= 900MiB"};
    settings.colour_by = "shard.strategy";
    timer.restart();
    const FrontAnalysis analysis = analyse(store, settings);
    qInfo("analyse() on 100k trials (3 objectives, 1 constraint, colour by knob): %lld ms; front %zu",
          static_cast<long long>(timer.elapsed()), analysis.front.size());

    for (size_t dims : {size_t{2}, size_t{3}}) {
      std::vector<ObjectivePoint> points(100000, ObjectivePoint(dims));
      for (auto& point : points) {
        for (double& x : point) x = unit(rng);
      }
      timer.restart();
      const std::vector<size_t> front = pareto_front(points);
      qInfo("pareto_front of 100k random points, %zu objectives: %lld ms; front %zu", dims,
            static_cast<long long>(timer.elapsed()), front.size());
    }

    timer.restart();
    TrialTableModel model(store, settings.objectives);
    qInfo("TrialTableModel over 100k trials: %lld ms", static_cast<long long>(timer.elapsed()));
  }
};

QTEST_MAIN(TestGuiModels)
#include "test_gui_models.moc"
