// memfront-viewer: the desktop viewer of results files.
//
//   memfront-viewer [results.jsonl ...]
//   memfront-viewer --render out.png|.svg|.pdf [--x metric --y metric]
//                   [--objectives a,b] [--width 1200 --height 800] results.jsonl...
//   memfront-viewer --help | --version
//
// --render draws the front view offscreen to the file and exits: 0 when
// written, 2 with a one-line error on bad arguments or when no trial could be
// read. The command line is read (by CLI11, as the other programs' are)
// before Qt starts, so that --help and --version need no display.
#include <QApplication>
#include <QStringList>

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

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

// Returns an error line, empty when the options can be rendered.
QString check_render(const RenderOptions& options) {
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
  CLI::App cli{"memfront-viewer: the desktop viewer of memfront results files"};
  cli.set_version_flag("--version", "memfront-viewer " MEMFRONT_VERSION);
  std::vector<std::string> files, objectives;
  std::string out, x, y;
  RenderOptions options;
  cli.add_option("files", files, "results files (JSONL) to open");
  CLI::Option* render_flag =
      cli.add_option("--render", out, "draw the front view offscreen to this .png, .svg or .pdf file and exit");
  cli.add_option("--x", x, "metric on the x axis (with --render)")->needs(render_flag);
  cli.add_option("--y", y, "metric on the y axis (with --render)")->needs(render_flag);
  cli.add_option("--objectives", objectives, "comma-separated objectives, e.g. peak_mem,step_time (with --render)")
      ->delimiter(',')
      ->needs(render_flag);
  cli.add_option("--width", options.width, "image width in pixels (with --render)")
      ->check(CLI::Range(50, 20000))
      ->needs(render_flag);
  cli.add_option("--height", options.height, "image height in pixels (with --render)")
      ->check(CLI::Range(50, 20000))
      ->needs(render_flag);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 2;
  }
  for (const std::string& file : files) options.files << QString::fromLocal8Bit(file.c_str());

  const bool rendering = render_flag->count() > 0;
  // Rendering needs no display: pick the offscreen platform before Qt starts.
  if (rendering) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QApplication::setOrganizationName("memfront");
  QApplication::setApplicationName("memfront-viewer");

  if (rendering) {
    options.out = QString::fromLocal8Bit(out.c_str());
    options.x = QString::fromStdString(x);
    options.y = QString::fromStdString(y);
    for (const std::string& name : objectives) {
      if (!name.empty()) options.objectives.push_back(QString::fromStdString(name).trimmed().toStdString());
    }
    if (const QString error = check_render(options); !error.isEmpty()) return fail(error);
    return render(options);
  }

  memfront::MainWindow window;
  window.show();
  if (!options.files.isEmpty()) window.open_files(options.files);
  return app.exec();
}
