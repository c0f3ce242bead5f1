#include "core/json_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>

#include "core/error.h"

namespace memfront {

int open_regular_file(const std::filesystem::path& path, std::string_view what) {
  // Non-blocking, so that opening a FIFO does not wait for a writer; then
  // only a regular file is read: a FIFO would hang, a device (/dev/zero)
  // never end.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw InputError(path.string() + ": cannot read the " + std::string(what) + ": " + std::strerror(error));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw InputError(path.string() + ": cannot read the " + std::string(what) + ": not a regular file (" +
                     (S_ISFIFO(info.st_mode)  ? "a FIFO"
                      : S_ISDIR(info.st_mode) ? "a directory"
                      : S_ISSOCK(info.st_mode) ? "a socket"
                                              : "a device") +
                     ")");
  }
  return fd;
}

std::string read_text_file(const std::filesystem::path& path, std::string_view what) {
  const auto fail = [&](int error) {
    throw InputError(path.string() + ": cannot read the " + std::string(what) + ": " + std::strerror(error));
  };
  const int fd = open_regular_file(path, what);
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::close(fd);
      fail(error);
    }
    if (count == 0) break;
    text.append(buffer, static_cast<size_t>(count));
  }
  ::close(fd);
  return text;
}

namespace {

// "<source>:<line>:<column>" of the byte at `offset` in `text`, whose first
// line is line `first_line` of the source.
std::string position_of(std::string_view text, size_t offset, std::string_view source, int first_line) {
  const std::string_view before = text.substr(0, std::min(offset, text.size()));
  const size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
  const long line = first_line + std::count(before.begin(), before.end(), '\n');
  const size_t column = before.size() - line_start + 1;
  return std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// Where the text first opens its (kMaxJsonDepth + 1)-th level of arrays and
// objects, if it does. Checked before parsing: a value nested that deep
// would be parsed, but copying, printing or walking it recurses once per
// level and would overflow the stack.
std::optional<size_t> too_deep_at(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::nullopt;
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, std::string_view source, int first_line) {
  if (const auto at = too_deep_at(text)) {
    throw InputError(position_of(text, *at, source, first_line) + ": not valid JSON: nested deeper than " +
                     std::to_string(kMaxJsonDepth) + " levels of arrays and objects");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    // nlohmann counts lines within `text` only, and says so inside its own
    // message; the position is recomputed from the byte offset it stopped at,
    // so that a line of a JSON Lines file gets the file's line number.
    const size_t stop = std::min<size_t>(error.byte > 0 ? error.byte - 1 : 0, text.size());
    // "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error while ...":
    // keep what follows the position.
    std::string detail = error.what();
    if (const size_t at = detail.find("parse error"); at != std::string::npos) {
      const size_t colon = detail.find(": ", at);
      detail = colon == std::string::npos ? detail.substr(at) : detail.substr(colon + 2);
    }
    throw InputError(position_of(text, stop, source, first_line) + ": not valid JSON: " + detail);
  } catch (const nlohmann::json::out_of_range& error) {
    // A number beyond double range (406: "number overflow parsing '1e309'"),
    // the one out_of_range the parser gives; its position is not in the
    // exception, so the number is looked up in the text.
    const std::string detail = error.what();
    const size_t quote = detail.find('\'');
    const std::string number =
        quote == std::string::npos ? std::string() : detail.substr(quote + 1, detail.rfind('\'') - quote - 1);
    const size_t at = number.empty() ? std::string_view::npos : text.find(number);
    char largest[32];
    std::snprintf(largest, sizeof largest, "%g", std::numeric_limits<double>::max());
    throw InputError((at == std::string_view::npos ? std::string(source) : position_of(text, at, source, first_line)) +
                     ": not valid JSON: the number " + number + " is out of range (accepted: magnitudes up to " +
                     largest + ")");
  }
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what) {
  return parse_json_text(read_text_file(path, what), path.string());
}

std::string json_pointer_token(std::string_view key) {
  std::string token;
  for (char c : key) {
    if (c == '~') {
      token += "~0";
    } else if (c == '/') {
      token += "~1";
    } else {
      token += c;
    }
  }
  return token;
}

std::string pointed_message(std::string_view where, std::string_view pointer, std::string_view what) {
  return std::string(where) + ": " + (pointer.empty() ? std::string("/") : std::string(pointer)) + ": " +
         std::string(what);
}

void fail_at(std::string_view where, std::string_view pointer, std::string_view what) {
  throw InputError(pointed_message(where, pointer, what));
}

}  // namespace memfront
