// memfront-viewer: the desktop viewer of results files.
//
//   memfront-viewer [results.jsonl ...]
//   memfront-viewer --render out.png|.svg|.pdf [--x metric --y metric]
//                   [--objectives a,b] [--width 1200 --height 800] results.jsonl...
//
// --render draws the front view offscreen to the file and exits: 0 when
// written, 2 with a one-line error on bad arguments or when no trial could be
// read.
#include <QApplication>
#include <QStringList>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gui/front_view.h"
#include "gui/main_window.h"
#include "gui/trial_store.h"

namespace {

struct RenderOptions {
  QString out, x, y;
  std::vector<std::string> objectives;
  int width = 1200, height = 800;
  QStringList files;
};

int fail(const QString& message) {
  std::fprintf(stderr, "memfront-viewer: %s\n", message.toLocal8Bit().constData());
  return 2;
}

bool has_render(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--render") == 0) return true;
  return false;
}

// Returns an error line, empty when the arguments are fine.
QString parse_render(const QStringList& args, RenderOptions& options) {
  for (int i = 1; i < args.size(); ++i) {
    const QString& arg = args[i];
    auto value = [&](QString& into) {
      if (i + 1 >= args.size()) return false;
      into = args[++i];
      return true;
    };
    QString text;
    if (arg == "--render") {
      if (!value(options.out)) return "--render needs an output file";
    } else if (arg == "--x") {
      if (!value(options.x)) return "--x needs a metric";
    } else if (arg == "--y") {
      if (!value(options.y)) return "--y needs a metric";
    } else if (arg == "--objectives") {
      if (!value(text)) return "--objectives needs a list, e.g. peak_mem,step_time";
      for (const QString& name : text.split(',', Qt::SkipEmptyParts)) options.objectives.push_back(name.trimmed().toStdString());
    } else if (arg == "--width" || arg == "--height") {
      bool ok = false;
      const int pixels = value(text) ? text.toInt(&ok) : 0;
      if (!ok || pixels < 50 || pixels > 20000) return arg + " needs a size in pixels (50 to 20000)";
      (arg == "--width" ? options.width : options.height) = pixels;
    } else if (arg.startsWith("--")) {
      return "unknown option " + arg;
    } else {
      options.files << arg;
    }
  }
  const QString suffix = options.out.section('.', -1).toLower();
  if (suffix != "png" && suffix != "svg" && suffix != "pdf") return "--render writes .png, .svg or .pdf, not " + options.out;
  if (options.files.isEmpty()) return "--render needs at least one results file";
  return {};
}

int render(const RenderOptions& options) {
  memfront::TrialStore store;
  QStringList problems;
  QObject::connect(&store, &memfront::TrialStore::file_problem,
                   [&](const QString&, const QString& message) { problems << message; });
  for (const QString& file : options.files) store.add_file_now(file);
  if (store.trial_count() == 0)
    return fail(problems.isEmpty() ? QStringLiteral("no trial could be read") : problems.first());
  for (const QString& problem : problems) std::fprintf(stderr, "memfront-viewer: %s\n", problem.toLocal8Bit().constData());

  memfront::FrontView view(store);
  view.resize(options.width, options.height);
  view.set_objectives(options.objectives.empty() ? store.default_objectives() : options.objectives);
  const std::string x = options.x.isEmpty() ? view.settings().x : options.x.toStdString();
  const std::string y = options.y.isEmpty() ? view.settings().y : options.y.toStdString();
  view.set_axes(x, y);
  if (!view.save_plot(options.out, options.width, options.height)) return fail("could not write " + options.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool rendering = has_render(argc, argv);
  // Rendering needs no display: pick the offscreen platform before Qt starts.
  if (rendering) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QApplication::setOrganizationName("memfront");
  QApplication::setApplicationName("memfront-viewer");

  if (rendering) {
    RenderOptions options;
    if (const QString error = parse_render(QApplication::arguments(), options); !error.isEmpty()) return fail(error);
    return render(options);
  }

  QStringList files = QApplication::arguments().mid(1);
  for (const QString& arg : files)
    if (arg.startsWith("--")) return fail("unknown option " + arg + " (usage: memfront-viewer [--render out.png] [results.jsonl ...])");
  memfront::MainWindow window;
  window.show();
  if (!files.isEmpty()) window.open_files(files);
  return app.exec();
}
