#include "core/json_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace memfront {

std::string read_text_file(const std::filesystem::path& path, std::string_view what) {
  const auto fail = [&](int error) {
    throw InputError(path.string() + ": cannot read the " + std::string(what) + ": " + std::strerror(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(errno);
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

nlohmann::json parse_json_text(std::string_view text, std::string_view source, int first_line) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    // nlohmann counts lines within `text` only, and says so inside its own
    // message; the position is recomputed from the byte offset it stopped at,
    // so that a line of a JSON Lines file gets the file's line number.
    const size_t stop = std::min<size_t>(error.byte > 0 ? error.byte - 1 : 0, text.size());
    const std::string_view before = text.substr(0, stop);
    const size_t line_start = before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1;
    const long line = first_line + std::count(before.begin(), before.end(), '\n');
    const size_t column = stop - line_start + 1;
    // "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error while ...":
    // keep what follows the position.
    std::string detail = error.what();
    if (const size_t at = detail.find("parse error"); at != std::string::npos) {
      const size_t colon = detail.find(": ", at);
      detail = colon == std::string::npos ? detail.substr(at) : detail.substr(colon + 2);
    }
    throw InputError(std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column) +
                     ": not valid JSON: " + detail);
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
