// What every memfront program answers on its command line: --version with the
// one version CMake's project() sets, --help with exit 0.
#include <string>

#include <gtest/gtest.h>

#include "tests/run_command.h"

namespace {

struct Program {
  const char* name;
  const char* path;
};

class ProgramTest : public testing::TestWithParam<Program> {};

TEST_P(ProgramTest, SaysItsVersion) {
  const Program program = GetParam();
  const CommandRun run = run_command(std::string("'") + program.path + "' --version");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output, std::string(program.name) + " " MEMFRONT_VERSION "\n");
}

TEST_P(ProgramTest, AnswersHelp) {
  const Program program = GetParam();
  const CommandRun run = run_command(std::string("'") + program.path + "' --help");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("--version"), std::string::npos) << run.output;
}

INSTANTIATE_TEST_SUITE_P(Programs, ProgramTest,
                         testing::Values(Program{"memfront", MEMFRONT_TOOL_EXE},
                                         Program{"memfront-trial", MEMFRONT_TRIAL_EXE},
                                         Program{"memfront-calibrate", MEMFRONT_CALIBRATE_EXE}),
                         [](const testing::TestParamInfo<Program>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

}  // namespace
