#pragma once
// A small expression language for study files and command lines:
//   parameter constraints   shard.strategy == "hybrid" -> world % shard.group == 0
//   outcome constraints     peak_mem <= 16GiB && step_time < 250ms
//   --where filters         loss_delta <= 0.05
//
// Grammar (lowest precedence first):
//   expr    := implies
//   implies := or ( "->" or )*            a -> b  is  !a || b (right-associative)
//   or      := and ( "||" and )*
//   and     := not ( "&&" not )*
//   not     := "!" not | compare
//   compare := sum ( ("==" | "!=" | "<" | "<=" | ">" | ">=") sum )?
//   sum     := product ( ("+" | "-") product )*
//   product := unary ( ("*" | "/" | "%") unary )*
//   unary   := "-" unary | atom
//   atom    := number [unit] | string | "true" | "false" | name | "(" expr ")"
// Names are dotted identifiers (shard.group, peak_mem, phase_s.comm). Strings
// are double-quoted. Units after a number scale it: bytes B KiB MiB GiB TiB
// (binary) KB MB GB TB (decimal); times s ms us ns (to seconds).
//
// Values are numbers, strings or booleans; comparing a string with a number,
// or using a name the lookup does not know, is an error that names it.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace memfront {

using ExprValue = std::variant<double, std::string, bool>;

// Returns the value of a name, or nullopt when the name is unknown.
using NameLookup = std::function<std::optional<ExprValue>(std::string_view name)>;

class Expr {
 public:
  // Throws InputError "<where>: <what>, at column N: <text with a caret>"-style,
  // one line, e.g. `study.json: /constraints/2: expected an operand at column 14`.
  static Expr parse(std::string_view text, std::string_view where);

  // Evaluates; throws InputError naming `where` for unknown names or type errors.
  ExprValue evaluate(const NameLookup& lookup) const;
  bool test(const NameLookup& lookup) const;  // evaluate, and require a boolean

  // Every name the expression mentions, in order of first appearance.
  const std::vector<std::string>& names() const;
  const std::string& text() const;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  std::vector<std::string> names_;
  std::string text_;
  std::string where_;
};

std::string to_string(const ExprValue& value);

}  // namespace memfront
