#include "core/jsonl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/json_file.h"

namespace memfront {

namespace {

[[noreturn]] void throw_system_error(const std::filesystem::path& path, std::string_view doing, int error) {
  throw std::runtime_error(path.string() + ": cannot " + std::string(doing) + ": " + std::strerror(error));
}

// Writes all of `bytes`, retrying after EINTR and short writes, so a line
// normally goes out in one write() call. Returns 0, or the errno of the failure.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return 0;
}

// A new or renamed file survives a power cut only once its directory is synced.
void fsync_directory(const std::filesystem::path& file) {
  const std::filesystem::path directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_system_error(directory, "open the directory to sync it", errno);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) throw_system_error(directory, "sync the directory", error);
}

// Whether `line` is a JSON text cut short: its syntax holds up to its end,
// where the parser runs out of input. A complete line with a fault in it (a
// number beyond double range, a stray character) is not torn: it is kept, and
// its reader reports the fault at its place.
bool is_cut_short(std::string_view line) {
  struct SyntaxOnly : nlohmann::json_sax<nlohmann::json> {
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return true; }
    bool key(string_t&) override { return true; }
    bool end_object() override { return true; }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::json::exception& error) override {
      // Running out of input is reported one past the last byte; a number
      // beyond double range (406) where it ends, which may be the end too.
      cut_short = position > size && error.id != 406;
      return false;
    }
    size_t size = 0;
    bool cut_short = false;
  } syntax;
  syntax.size = line.size();
  nlohmann::json::sax_parse(line, &syntax);
  return syntax.cut_short;
}

}  // namespace

bool is_blank_line(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

JsonlText split_jsonl(std::string_view text, size_t offset) {
  JsonlText split;
  split.complete_bytes = text.size();
  int number = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
  for (size_t begin = offset; begin < text.size(); ++number) {
    const size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) {
      const JsonlLine last{text.substr(begin), number, begin, text.size()};
      if (is_cut_short(last.text)) {
        split.torn_tail = last;
        split.complete_bytes = begin;
      } else {
        split.lines.push_back(last);
        split.missing_final_newline = true;
      }
      break;
    }
    split.lines.push_back({text.substr(begin, end - begin), number, begin, end + 1});
    begin = end + 1;
  }
  return split;
}

// --- JsonlReader ---------------------------------------------------------------

namespace {
constexpr size_t kReadChunk = size_t{1} << 16;  // as read_text_file reads
}  // namespace

JsonlReader::JsonlReader(const std::filesystem::path& path, std::string_view what, uint64_t offset, int number)
    : path_(path), fd_(open_regular_file(path, what)), buffer_at_(offset), number_(number) {}

JsonlReader::~JsonlReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool JsonlReader::read_more() {
  // What was handed out before the line being looked at goes first, so the
  // buffer holds one line and a chunk at most.
  buffer_.erase(0, line_begin_);
  buffer_at_ += line_begin_;
  searched_to_ -= line_begin_;
  line_begin_ = 0;
  const size_t held = buffer_.size();
  buffer_.resize(held + kReadChunk);
  ssize_t count;
  do {
    count = ::pread(fd_, buffer_.data() + held, kReadChunk, static_cast<off_t>(buffer_at_ + held));
  } while (count < 0 && errno == EINTR);
  const int error = errno;
  buffer_.resize(held + static_cast<size_t>(std::max<ssize_t>(count, 0)));
  if (count < 0) throw_system_error(path_, "read it", error);
  return count > 0;
}

std::optional<JsonlLine> JsonlReader::next() {
  while (!at_end_) {
    const size_t end = buffer_.find('\n', searched_to_);
    if (end != std::string::npos) {
      const JsonlLine line{std::string_view(buffer_).substr(line_begin_, end - line_begin_), number_++,
                           buffer_at_ + line_begin_, buffer_at_ + end + 1};
      line_begin_ = searched_to_ = end + 1;
      return line;
    }
    searched_to_ = buffer_.size();
    if (read_more()) continue;
    // The end of the file: a last line without its '\n', as split_jsonl judges it.
    at_end_ = true;
    if (line_begin_ == buffer_.size()) break;
    const JsonlLine last{std::string_view(buffer_).substr(line_begin_), number_, buffer_at_ + line_begin_,
                         buffer_at_ + buffer_.size()};
    if (is_cut_short(last.text)) {
      torn_tail_ = last;
      break;
    }
    return last;
  }
  return std::nullopt;
}

// --- JsonlAppender -------------------------------------------------------------

JsonlAppender::JsonlAppender(JsonlAppender&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), repaired_(std::move(other.repaired_)) {}

JsonlAppender& JsonlAppender::operator=(JsonlAppender&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    repaired_ = std::move(other.repaired_);
  }
  return *this;
}

JsonlAppender::~JsonlAppender() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<JsonlAppender> JsonlAppender::create_new(const std::filesystem::path& path,
                                                       std::string_view first_line) {
  if (first_line.find('\n') != std::string_view::npos) {
    throw std::invalid_argument(path.string() + ": a JSONL line must not contain '\\n'");
  }
  // The file appears with its first line or not at all: the line is written
  // and synced under a temporary name, then linked to the real one (link,
  // unlike rename, never replaces a file that exists). A process killed
  // half-way leaves at most the temporary file, never a results file that
  // --resume would refuse.
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw_system_error(path, "create its temporary file " + temporary.filename().string(), errno);
  JsonlAppender appender(path, fd);
  int error = write_all(fd, std::string(first_line) + "\n");
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  const bool linked = error == 0 && ::link(temporary.c_str(), path.c_str()) == 0;
  if (error == 0 && !linked) error = errno;
  ::unlink(temporary.c_str());
  if (error == EEXIST) return std::nullopt;
  if (error != 0) throw_system_error(path, "create the file", error);
  fsync_directory(path);
  return appender;
}

JsonlAppender JsonlAppender::open_file(const std::filesystem::path& path, bool create_if_missing) {
  const int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | (create_if_missing ? O_CREAT : 0), 0644);
  if (fd < 0) throw_system_error(path, "open the file to append to it", errno);
  JsonlAppender appender(path, fd);
  if (create_if_missing) fsync_directory(path);
  return appender;
}

std::string JsonlAppender::read_all() const {
  std::string text;
  char buffer[1 << 16];
  for (off_t at = 0;;) {
    const ssize_t count = ::pread(fd_, buffer, sizeof buffer, at);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) throw_system_error(path_, "read the file", errno);
    if (count == 0) return text;
    text.append(buffer, static_cast<size_t>(count));
    at += count;
  }
}

void JsonlAppender::repair_tail(std::string_view text) {
  const JsonlText split = split_jsonl(text);
  const std::string where = path_.string() + ":";
  if (split.torn_tail) {
    if (::ftruncate(fd_, static_cast<off_t>(split.complete_bytes)) != 0 || ::fsync(fd_) != 0) {
      throw_system_error(path_, "cut off the torn last line", errno);
    }
    repaired_ = where + std::to_string(split.torn_tail->number) + ": cut off a torn last line (" +
                std::to_string(split.torn_tail->text.size()) + " bytes; a crash mid-write)";
  } else if (split.missing_final_newline) {
    if (const int error = write_all(fd_, "\n"); error != 0 || ::fsync(fd_) != 0) {
      throw_system_error(path_, "end the last line", error != 0 ? error : errno);
    }
    repaired_ = where + std::to_string(split.lines.back().number) + ": ended the last line with its missing newline";
  }
}

void JsonlAppender::append(std::string_view line) {
  if (line.find('\n') != std::string_view::npos) {
    throw std::invalid_argument(path_.string() + ": a JSON Lines line to append holds a newline");
  }
  std::string bytes(line);
  bytes += '\n';
  struct stat before {};
  if (::fstat(fd_, &before) != 0) throw_system_error(path_, "append a line", errno);
  if (const int error = write_all(fd_, bytes); error != 0) {
    if (::ftruncate(fd_, before.st_size) != 0) {
      throw_system_error(path_, "append a line (and the partial line could not be cut off)", error);
    }
    throw_system_error(path_, "append a line", error);
  }
  if (::fsync(fd_) != 0) throw_system_error(path_, "sync the appended line", errno);
}

// --- atomic replace --------------------------------------------------------------

void replace_file_atomically(const std::filesystem::path& path, std::string_view content, FileSync sync) {
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_system_error(path, "create its temporary file " + temporary.filename().string(), errno);
  int error = write_all(fd, content);
  if (error == 0 && sync == FileSync::durable && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && ::rename(temporary.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temporary.c_str());
    throw_system_error(path, "write the file", error);
  }
  if (sync == FileSync::durable) fsync_directory(path);
}

}  // namespace memfront
