// Numbers read and written the same whatever the locale: the viewer runs
// under the user's (Qt sets it), where strtod once read "1.5ms" as 1 ms.
#include <gtest/gtest.h>

#include "tests/comma_locale.h"
#include "core/arena.h"
#include "tuner/expr.h"

namespace memfront {
namespace {

using test_support::CommaDecimalLocale;
using test_support::kMissingCommaLocale;

TEST(CommaDecimalLocale, ExpressionNumbersKeepTheirFraction) {
  CommaDecimalLocale locale;
  if (!locale.active()) GTEST_SKIP() << kMissingCommaLocale;
  const NameLookup none = [](std::string_view) { return std::optional<ExprValue>(); };
  EXPECT_DOUBLE_EQ(std::get<double>(Expr::parse("1.5ms", "test").evaluate(none)), 1.5e-3);
  EXPECT_DOUBLE_EQ(std::get<double>(Expr::parse("2.5e3 * 0.5", "test").evaluate(none)), 1250);
  EXPECT_DOUBLE_EQ(std::get<double>(Expr::parse("1.5GiB", "test").evaluate(none)), 1.5 * 0x1p30);
  const NameLookup step_time = [](std::string_view) { return std::optional<ExprValue>(1.2e-3); };
  EXPECT_FALSE(Expr::parse("step_time < 1.1ms", "test").test(step_time));
  EXPECT_TRUE(Expr::parse("step_time < 1.5ms", "test").test(step_time));
}

TEST(CommaDecimalLocale, ExpressionValuesPrintWithAPoint) {
  CommaDecimalLocale locale;
  if (!locale.active()) GTEST_SKIP() << kMissingCommaLocale;
  EXPECT_EQ(to_string(ExprValue(1.5)), "1.5");
  EXPECT_EQ(to_string(ExprValue(0.1)), "0.1");
  EXPECT_EQ(to_string(ExprValue(1e-7)), "1e-07");
  EXPECT_EQ(to_string(ExprValue(17179869184.0)), "17179869184");
  EXPECT_EQ(to_string(ExprValue(-0.0)), "0");
}

TEST(CommaDecimalLocale, ByteSizesKeepTheirFraction) {
  CommaDecimalLocale locale;
  if (!locale.active()) GTEST_SKIP() << kMissingCommaLocale;
  EXPECT_EQ(parse_bytes("1.5 GiB"), 3ull << 29);
  EXPECT_EQ(parse_bytes("0.5KiB"), 512u);
  EXPECT_FALSE(parse_bytes("1,5 GiB")) << "a comma is never a decimal mark in memfront's inputs";
}

// The same numbers in the C locale, and what from_chars reads differently
// from strtod: no value beyond uint64_t (undefined to convert before).
TEST(ParseBytes, RefusesWhatNoMemoryHolds) {
  EXPECT_EQ(parse_bytes(" 2 MiB"), 2u << 20);
  EXPECT_FALSE(parse_bytes("inf"));
  EXPECT_FALSE(parse_bytes("nan GiB"));
  EXPECT_FALSE(parse_bytes("1e30 TiB"));
  EXPECT_FALSE(parse_bytes(""));
  EXPECT_FALSE(parse_bytes("   "));
}

}  // namespace
}  // namespace memfront
