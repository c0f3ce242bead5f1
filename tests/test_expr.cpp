#include "tuner/expr.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace memfront {
namespace {

// A lookup over a fixed table, like a config's normalized JSON.
NameLookup table(std::map<std::string, ExprValue> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<ExprValue> {
    auto it = values.find(std::string(name));
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

const NameLookup kNoNames = table({});

ExprValue eval(std::string_view text, const NameLookup& lookup = kNoNames) {
  return Expr::parse(text, "test").evaluate(lookup);
}

double number(std::string_view text) { return std::get<double>(eval(text)); }
bool truth(std::string_view text, const NameLookup& lookup = kNoNames) {
  return Expr::parse(text, "test").test(lookup);
}

// The one-line message of the InputError that parsing or evaluating throws.
std::string error_of(std::string_view text, const NameLookup& lookup = kNoNames) {
  try {
    Expr::parse(text, "study.json: /constraints/0").evaluate(lookup);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Expr, ArithmeticPrecedenceAndAssociativity) {
  EXPECT_EQ(number("1 + 2 * 3"), 7);
  EXPECT_EQ(number("(1 + 2) * 3"), 9);
  EXPECT_EQ(number("10 - 4 - 3"), 3);   // left-associative
  EXPECT_EQ(number("64 / 4 / 2"), 8);   // left-associative
  EXPECT_EQ(number("2 * 3 % 4"), 2);    // same level as * and /
  EXPECT_EQ(number("-2 * 3"), -6);
  EXPECT_EQ(number("- -2"), 2);
  EXPECT_EQ(number("2 - -3"), 5);
  EXPECT_EQ(number("7.5 % 2"), 1.5);    // fmod on non-integers
  EXPECT_EQ(number("-7 % 3"), -1);      // the sign of the dividend, as fmod
  EXPECT_EQ(number("1e3 + 2.5e-1"), 1000.25);
}

TEST(Expr, LogicPrecedence) {
  EXPECT_TRUE(truth("false -> false -> false"));  // right-associative: false -> (false -> false)
  EXPECT_FALSE(truth("true || true -> false"));   // -> binds loosest
  EXPECT_TRUE(truth("true || false && false"));   // && binds tighter than ||
  EXPECT_FALSE(truth("!false && false"));         // ! binds tighter than &&
  EXPECT_TRUE(truth("!1 == 2"));                  // ! applies to the comparison
  EXPECT_TRUE(truth("!!true"));
  EXPECT_TRUE(truth("1 + 1 == 2 && 3 > 2"));      // comparisons bind tighter than &&
  EXPECT_TRUE(truth("false -> 1 / 0 == 1"));      // the right side of -> only when needed
  EXPECT_FALSE(truth("false && 1 / 0 == 1"));
  EXPECT_TRUE(truth("true || 1 / 0 == 1"));
}

TEST(Expr, ConstraintOverConfigNames) {
  const Expr expr = Expr::parse("shard.strategy == \"hybrid\" -> world % shard.group == 0", "test");
  EXPECT_TRUE(expr.test(table({{"shard.strategy", std::string("hybrid")}, {"world", 8.0}, {"shard.group", 4.0}})));
  EXPECT_FALSE(expr.test(table({{"shard.strategy", std::string("hybrid")}, {"world", 8.0}, {"shard.group", 3.0}})));
  EXPECT_TRUE(expr.test(table({{"shard.strategy", std::string("ddp")}, {"world", 8.0}, {"shard.group", 3.0}})));
  EXPECT_EQ(expr.names(), (std::vector<std::string>{"shard.strategy", "world", "shard.group"}));
  EXPECT_EQ(expr.text(), "shard.strategy == \"hybrid\" -> world % shard.group == 0");
}

TEST(Expr, NamesInOrderOfFirstAppearanceWithoutLiterals) {
  const Expr expr = Expr::parse("b + a > a * phase_s.p90 && true != false && step_time_s.p90 > 0", "test");
  EXPECT_EQ(expr.names(), (std::vector<std::string>{"b", "a", "phase_s.p90", "step_time_s.p90"}));
}

TEST(Expr, Units) {
  EXPECT_TRUE(truth("16GiB == 17179869184"));
  EXPECT_TRUE(truth("250ms == 0.25"));
  EXPECT_EQ(number("1.5KiB"), 1536);
  EXPECT_EQ(number("2MiB"), 2097152);
  EXPECT_EQ(number("1TiB"), 1099511627776);
  EXPECT_EQ(number("512B"), 512);
  EXPECT_EQ(number("2KB"), 2000);
  EXPECT_EQ(number("2MB"), 2e6);
  EXPECT_EQ(number("3GB"), 3e9);
  EXPECT_EQ(number("1TB"), 1e12);
  EXPECT_EQ(number("2s"), 2);
  EXPECT_DOUBLE_EQ(number("3us"), 3e-6);
  EXPECT_DOUBLE_EQ(number("5ns"), 5e-9);
  EXPECT_TRUE(truth("peak_mem <= 16GiB && step_time < 250ms",
                    table({{"peak_mem", 1e9}, {"step_time", 0.2}})));
  EXPECT_FALSE(truth("peak_mem <= 16GiB && step_time < 250ms",
                     table({{"peak_mem", 1e9}, {"step_time", 0.3}})));
}

TEST(Expr, StringsBooleansAndNumbersCompareWithinTheirType) {
  EXPECT_TRUE(truth("\"zero3\" == \"zero3\""));
  EXPECT_TRUE(truth("\"zero3\" != \"zero2\""));
  EXPECT_TRUE(truth("\"say \\\"hi\\\"\" == s", table({{"s", std::string("say \"hi\"")}})));
  EXPECT_TRUE(truth("true == true"));
  EXPECT_TRUE(truth("(1 < 2) != false"));
  EXPECT_TRUE(truth("0.1 + 0.2 > 0.3"));  // plain doubles, no tolerance
  EXPECT_EQ(error_of("\"hybrid\" == 2"),
            "study.json: /constraints/0: '==' compares values of one type, got string \"hybrid\" and number 2 "
            "at column 10 in \"\"hybrid\" == 2\"");
  EXPECT_EQ(error_of("\"a\" < \"b\""),
            "study.json: /constraints/0: '<' orders numbers only, got string \"a\" and string \"b\" at column 5 in "
            "\"\"a\" < \"b\"\"");
  EXPECT_EQ(error_of("true >= false"),
            "study.json: /constraints/0: '>=' orders numbers only, got boolean true and boolean false at column 6 in "
            "\"true >= false\"");
  EXPECT_EQ(error_of("true != 1"),
            "study.json: /constraints/0: '!=' compares values of one type, got boolean true and number 1 at column 6 "
            "in \"true != 1\"");
}

TEST(Expr, OperatorsCheckTheirOperandTypes) {
  const NameLookup strategy = table({{"shard.strategy", std::string("ddp")}});
  EXPECT_EQ(error_of("shard.strategy + 1", strategy),
            "study.json: /constraints/0: '+' needs numbers, got string \"ddp\" and number 1 at column 16 in "
            "\"shard.strategy + 1\"");
  EXPECT_EQ(error_of("1 && true"),
            "study.json: /constraints/0: '&&' needs booleans, got number 1 at column 3 in \"1 && true\"");
  EXPECT_EQ(error_of("false || 2"),
            "study.json: /constraints/0: '||' needs booleans, got number 2 at column 7 in \"false || 2\"");
  EXPECT_EQ(error_of("2 -> true"),
            "study.json: /constraints/0: '->' needs booleans, got number 2 at column 3 in \"2 -> true\"");
  EXPECT_EQ(error_of("!3"), "study.json: /constraints/0: '!' needs a boolean, got number 3 at column 1 in \"!3\"");
  EXPECT_EQ(error_of("-true"), "study.json: /constraints/0: '-' needs a number, got boolean true at column 1 in \"-true\"");
}

TEST(Expr, DivisionByZeroNamesTheExpression) {
  const NameLookup group = table({{"world", 4.0}, {"shard.group", 0.0}});
  EXPECT_EQ(error_of("world / shard.group > 1", group),
            "study.json: /constraints/0: division by zero at column 7 in \"world / shard.group > 1\"");
  EXPECT_EQ(error_of("world % shard.group == 0", group),
            "study.json: /constraints/0: modulo by zero at column 7 in \"world % shard.group == 0\"");
}

TEST(Expr, UnknownNames) {
  EXPECT_EQ(error_of("shard.grup == 2", table({{"shard.group", 2.0}})),
            "study.json: /constraints/0: unknown name 'shard.grup' in \"shard.grup == 2\"");
  // Names are looked up only when they are evaluated.
  EXPECT_TRUE(truth("true || nowhere", kNoNames));
}

TEST(Expr, ParseErrorsNameTheColumn) {
  EXPECT_EQ(error_of("world % "), "study.json: /constraints/0: expected an operand at column 9 in \"world % \"");
  EXPECT_EQ(error_of(""), "study.json: /constraints/0: expected an operand at column 1 in \"\"");
  EXPECT_EQ(error_of("1 + * 2"), "study.json: /constraints/0: expected an operand, got '*' at column 5 in \"1 + * 2\"");
  EXPECT_EQ(error_of("(1 + 2"),
            "study.json: /constraints/0: expected ')' (for the '(' at column 1) at column 7 in \"(1 + 2\"");
  EXPECT_EQ(error_of("(1 + 2 3"),
            "study.json: /constraints/0: expected ')' (for the '(' at column 1), got '3' at column 8 in \"(1 + 2 3\"");
  EXPECT_EQ(error_of("1 2"),
            "study.json: /constraints/0: expected an operator or the end, got '2' at column 3 in \"1 2\"");
  EXPECT_EQ(error_of("world = 4"),
            "study.json: /constraints/0: unexpected character '=' (did you mean '=='?) at column 7 in \"world = 4\"");
  EXPECT_EQ(error_of("a # b"), "study.json: /constraints/0: unexpected character '#' at column 3 in \"a # b\"");
  EXPECT_EQ(error_of("s == \"ddp"), "study.json: /constraints/0: unterminated string at column 6 in \"s == \"ddp\"");
  EXPECT_EQ(error_of("peak_mem < 16Gb"),
            "study.json: /constraints/0: unknown unit 'Gb' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, s, ms, "
            "us or ns) at column 14 in \"peak_mem < 16Gb\"");
  EXPECT_EQ(error_of("1 < x < 3"),
            "study.json: /constraints/0: comparisons do not chain (join them with &&), got '<' at column 7 in "
            "\"1 < x < 3\"");
  // Line breaks would split the one-line message.
  EXPECT_EQ(error_of("1 +\n"), "study.json: /constraints/0: expected an operand at column 5 in \"1 + \"");
}

TEST(Expr, ErrorsWithoutWhereHaveNoPrefix) {
  try {
    Expr::parse("1 +", "");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "expected an operand at column 4 in \"1 +\"");
  }
}

TEST(Expr, DeepNestingIsAnErrorNotACrash) {
  const std::string parens = std::string(100000, '(') + "1" + std::string(100000, ')');
  EXPECT_THROW(Expr::parse(parens, "test"), InputError);
  std::string minus(100000, '-');
  EXPECT_THROW(Expr::parse(minus + "1", "test"), InputError);
  std::string sum = "1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  EXPECT_THROW(Expr::parse(sum, "test"), InputError);
  // Well within the bound, nesting works.
  EXPECT_EQ(number(std::string(200, '(') + "1" + std::string(200, ')')), 1);
}

TEST(Expr, TestRequiresABoolean) {
  try {
    Expr::parse("1 + 1", "where").test(kNoNames);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "where: expected a condition (true or false), got number 2 from \"1 + 1\"");
  }
}

TEST(Expr, ToString) {
  EXPECT_EQ(to_string(ExprValue(17179869184.0)), "17179869184");
  EXPECT_EQ(to_string(ExprValue(0.25)), "0.25");
  EXPECT_EQ(to_string(ExprValue(0.1)), "0.1");
  EXPECT_EQ(to_string(ExprValue(-0.0)), "0");
  EXPECT_EQ(to_string(ExprValue(1e-9)), "1e-09");
  EXPECT_EQ(to_string(ExprValue(std::string("ddp"))), "\"ddp\"");
  EXPECT_EQ(to_string(ExprValue(true)), "true");
  EXPECT_EQ(to_string(ExprValue(false)), "false");
}

}  // namespace
}  // namespace memfront
