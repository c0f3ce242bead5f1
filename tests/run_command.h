#pragma once
// Running a program from a test: through the shell, with stdout and stderr
// captured together.
#include <sys/wait.h>

#include <cstdio>
#include <string>

struct CommandRun {
  int exit_code;       // -1 when a signal ended the command
  std::string output;  // stdout and stderr together
};

inline CommandRun run_command(const std::string& command_line) {
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed for: " + command_line};
  std::string output;
  char chunk[4096];
  while (size_t n = fread(chunk, 1, sizeof chunk, pipe)) output.append(chunk, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}
