#include "tuner/expr.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <utility>

#include "core/arena.h"
#include "core/error.h"

namespace memfront {

namespace {

enum class Op { implies, or_, and_, eq, ne, lt, le, gt, ge, add, sub, mul, div, mod, neg, not_ };

std::string_view symbol(Op op) {
  switch (op) {
    case Op::implies: return "->";
    case Op::or_: return "||";
    case Op::and_: return "&&";
    case Op::eq: return "==";
    case Op::ne: return "!=";
    case Op::lt: return "<";
    case Op::le: return "<=";
    case Op::gt: return ">";
    case Op::ge: return ">=";
    case Op::add: return "+";
    case Op::sub: return "-";
    case Op::mul: return "*";
    case Op::div: return "/";
    case Op::mod: return "%";
    case Op::neg: return "-";
    case Op::not_: return "!";
  }
  return "?";
}

// Parentheses, "!" and "-" chains recurse in the parser and long operator
// chains in the evaluator; a bound keeps hostile input from exhausting the stack.
constexpr int kMaxDepth = 1000;

}  // namespace

struct Expr::Node {
  enum class Kind { literal, name, unary, binary };
  Kind kind = Kind::literal;
  ExprValue value;  // literal
  std::string name;  // name
  Op op = Op::add;   // unary (operand in lhs) and binary
  int column = 0;    // of the operator, for evaluation errors
  int depth = 1;
  std::shared_ptr<const Node> lhs, rhs;
};

namespace {

using NodePtr = std::shared_ptr<const Expr::Node>;

// The text as it appears inside an error message: on one line.
std::string quoted(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  return "\"" + out + "\"";
}

std::string prefix(std::string_view where) { return where.empty() ? "" : std::string(where) + ": "; }

// "number 3", "string \"ddp\"", "boolean true": a value with its type, for errors.
std::string describe(const ExprValue& value) {
  if (std::holds_alternative<double>(value)) return "number " + to_string(value);
  if (std::holds_alternative<std::string>(value)) return "string " + to_string(value);
  return "boolean " + to_string(value);
}

struct Token {
  enum class Kind { number, string, name, symbol, end };
  Kind kind;
  std::string text;  // the symbol, the name, or the string's contents
  double number = 0;
  int column;  // 1-based
};

bool is_name_char(char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; }

// Splits the text into tokens; the parser never looks at characters.
class Lexer {
 public:
  Lexer(std::string_view text, std::string_view where) : text_(text), where_(where) {}

  std::vector<Token> run() {
    std::vector<Token> tokens;
    while (true) {
      while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      if (pos_ == text_.size()) break;
      const char ch = text_[pos_];
      if (std::isdigit(static_cast<unsigned char>(ch))) {
        tokens.push_back(number());
      } else if (ch == '"') {
        tokens.push_back(string());
      } else if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
        tokens.push_back(name());
      } else {
        tokens.push_back(symbol());
      }
    }
    tokens.push_back({Token::Kind::end, "", 0, column(text_.size())});
    return tokens;
  }

 private:
  int column(size_t pos) const { return static_cast<int>(pos) + 1; }

  [[noreturn]] void fail(const std::string& what, size_t pos) const {
    throw InputError(prefix(where_) + what + " at column " + std::to_string(column(pos)) + " in " + quoted(text_));
  }

  // digits [. digits] [e [+-] digits], then letters that must be a unit.
  Token number() {
    const size_t start = pos_;
    auto digits = [&] {
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    };
    digits();
    if (pos_ + 1 < text_.size() && text_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(text_[pos_ + 1]))) {
      ++pos_;
      digits();
    }
    // An exponent only when digits follow, so that "2e" stays a number with a bad unit.
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      size_t after = pos_ + 1;
      if (after < text_.size() && (text_[after] == '+' || text_[after] == '-')) ++after;
      if (after < text_.size() && std::isdigit(static_cast<unsigned char>(text_[after]))) {
        pos_ = after;
        digits();
      }
    }
    const std::string digits_text(text_.substr(start, pos_ - start));
    const size_t unit_start = pos_;
    while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
    const std::string unit(text_.substr(unit_start, pos_ - unit_start));
    // from_chars, not strtod: the viewer runs under the user's locale, where
    // strtod would stop at the '.' of "1.5" wherever the decimal mark is ','.
    double value = 0;
    const auto read = std::from_chars(digits_text.data(), digits_text.data() + digits_text.size(), value);
    const double scaled = value * scale(unit, unit_start);
    if (read.ec != std::errc() || !std::isfinite(scaled)) {
      char largest[32];
      std::snprintf(largest, sizeof largest, "%g", std::numeric_limits<double>::max());
      fail("the number " + digits_text + unit + " is out of range (accepted: magnitudes up to " + largest + ")", start);
    }
    return {Token::Kind::number, digits_text + unit, scaled, column(start)};
  }

  double scale(const std::string& unit, size_t pos) const {
    if (unit.empty()) return 1;
    if (unit == "s") return 1;
    if (unit == "ms") return 1e-3;
    if (unit == "us") return 1e-6;
    if (unit == "ns") return 1e-9;
    // Byte units are the ones configs and --mem-cap accept.
    if (auto bytes = byte_unit_scale(unit)) return *bytes;
    fail("unknown unit '" + unit + "' (expected B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, s, ms, us or ns)", pos);
  }

  // "..." with \" and \\ as the only escapes.
  Token string() {
    const size_t start = pos_++;
    std::string value;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size() && (text_[pos_ + 1] == '"' || text_[pos_ + 1] == '\\')) ++pos_;
      value += text_[pos_++];
    }
    if (pos_ == text_.size()) fail("unterminated string", start);
    ++pos_;
    return {Token::Kind::string, value, 0, column(start)};
  }

  // Dotted identifiers; segments after a dot may start with a digit (phase_s.p90, a.0).
  Token name() {
    const size_t start = pos_;
    while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
    while (pos_ + 1 < text_.size() && text_[pos_] == '.' && is_name_char(text_[pos_ + 1])) {
      ++pos_;
      while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
    }
    return {Token::Kind::name, std::string(text_.substr(start, pos_ - start)), 0, column(start)};
  }

  Token symbol() {
    static constexpr std::string_view two[] = {"->", "||", "&&", "==", "!=", "<=", ">="};
    static constexpr std::string_view one = "<>!+-*/%()";
    const size_t start = pos_;
    for (std::string_view s : two) {
      if (text_.substr(pos_, 2) == s) {
        pos_ += 2;
        return {Token::Kind::symbol, std::string(s), 0, column(start)};
      }
    }
    if (one.find(text_[pos_]) != std::string_view::npos) {
      return {Token::Kind::symbol, std::string(1, text_[pos_++]), 0, column(start)};
    }
    const std::string hint = text_[pos_] == '=' ? " (did you mean '=='?)" : "";
    fail("unexpected character '" + std::string(1, text_[pos_]) + "'" + hint, pos_);
  }

  std::string_view text_;
  std::string_view where_;
  size_t pos_ = 0;
};

// Recursive descent over the grammar in expr.h, one function per rule.
class Parser {
 public:
  Parser(std::string_view text, std::string_view where)
      : text_(text), where_(where), tokens_(Lexer(text, where).run()) {}

  NodePtr parse_all() {
    NodePtr root = implies();
    if (peek().kind != Token::Kind::end) fail("expected an operator or the end, got " + shown(peek()), peek());
    return root;
  }

  std::vector<std::string> names;  // in order of first appearance

 private:
  const Token& peek() const { return tokens_[pos_]; }

  bool accept(std::string_view symbol) {
    if (peek().kind != Token::Kind::symbol || peek().text != symbol) return false;
    ++pos_;
    return true;
  }

  std::string shown(const Token& token) const {
    return token.kind == Token::Kind::string ? "\"" + token.text + "\"" : "'" + token.text + "'";
  }

  [[noreturn]] void fail(const std::string& what, const Token& at) const {
    throw InputError(prefix(where_) + what + " at column " + std::to_string(at.column) + " in " + quoted(text_));
  }

  // Counts the nesting of the recursive rules; see kMaxDepth.
  struct Nesting {
    Nesting(Parser& parser) : parser(parser) {
      if (++parser.nesting_ > kMaxDepth) parser.fail("nested deeper than " + std::to_string(kMaxDepth), parser.peek());
    }
    ~Nesting() { --parser.nesting_; }
    Parser& parser;
  };

  NodePtr make(Op op, int column, NodePtr lhs, NodePtr rhs) {
    auto node = std::make_shared<Expr::Node>();
    node->kind = rhs ? Expr::Node::Kind::binary : Expr::Node::Kind::unary;
    node->op = op;
    node->column = column;
    node->depth = 1 + std::max(lhs->depth, rhs ? rhs->depth : 0);
    if (node->depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth), peek());
    node->lhs = std::move(lhs);
    node->rhs = std::move(rhs);
    return node;
  }

  // implies := or ( "->" implies )?   (right-associative by recursion)
  NodePtr implies() {
    Nesting nesting(*this);
    NodePtr lhs = or_();
    const int column = peek().column;
    if (!accept("->")) return lhs;
    return make(Op::implies, column, lhs, implies());
  }

  // The left-associative levels: operand ( op operand )*.
  template <class Operand>
  NodePtr chain(Operand operand, std::initializer_list<std::pair<std::string_view, Op>> ops) {
    NodePtr lhs = (this->*operand)();
    while (true) {
      const int column = peek().column;
      auto it = std::find_if(ops.begin(), ops.end(), [&](const auto& op) { return accept(op.first); });
      if (it == ops.end()) return lhs;
      lhs = make(it->second, column, lhs, (this->*operand)());
    }
  }

  NodePtr or_() { return chain(&Parser::and_, {{"||", Op::or_}}); }
  NodePtr and_() { return chain(&Parser::not_, {{"&&", Op::and_}}); }

  NodePtr not_() {
    Nesting nesting(*this);
    const int column = peek().column;
    if (accept("!")) return make(Op::not_, column, not_(), nullptr);
    return compare();
  }

  std::optional<Op> comparison() {
    static constexpr std::pair<std::string_view, Op> ops[] = {{"==", Op::eq}, {"!=", Op::ne}, {"<=", Op::le},
                                                              {">=", Op::ge}, {"<", Op::lt},  {">", Op::gt}};
    for (const auto& [text, op] : ops) {
      if (accept(text)) return op;
    }
    return std::nullopt;
  }

  // compare := sum ( op sum )?   "a < b < c" is refused rather than read as "(a < b) < c".
  NodePtr compare() {
    NodePtr lhs = sum();
    const int column = peek().column;
    std::optional<Op> op = comparison();
    if (!op) return lhs;
    NodePtr node = make(*op, column, lhs, sum());
    const Token& next = peek();
    if (comparison()) fail("comparisons do not chain (join them with &&), got " + shown(next), next);
    return node;
  }

  NodePtr sum() { return chain(&Parser::product, {{"+", Op::add}, {"-", Op::sub}}); }
  NodePtr product() { return chain(&Parser::unary, {{"*", Op::mul}, {"/", Op::div}, {"%", Op::mod}}); }

  NodePtr unary() {
    Nesting nesting(*this);
    const int column = peek().column;
    if (accept("-")) return make(Op::neg, column, unary(), nullptr);
    return atom();
  }

  NodePtr atom() {
    const Token& token = peek();
    auto node = std::make_shared<Expr::Node>();
    switch (token.kind) {
      case Token::Kind::number:
        node->value = token.number;
        break;
      case Token::Kind::string:
        node->value = token.text;
        break;
      case Token::Kind::name:
        if (token.text == "true" || token.text == "false") {
          node->value = token.text == "true";
        } else {
          node->kind = Expr::Node::Kind::name;
          node->name = token.text;
          if (std::find(names.begin(), names.end(), token.text) == names.end()) names.push_back(token.text);
        }
        break;
      case Token::Kind::symbol:
        if (accept("(")) {
          NodePtr inner = implies();
          if (!accept(")")) {
            fail("expected ')' (for the '(' at column " + std::to_string(token.column) + ")" +
                     (peek().kind == Token::Kind::end ? "" : ", got " + shown(peek())),
                 peek());
          }
          return inner;
        }
        fail("expected an operand, got " + shown(token), token);
      case Token::Kind::end:
        fail("expected an operand", token);
    }
    ++pos_;
    return node;
  }

  std::string_view text_;
  std::string_view where_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int nesting_ = 0;
};

// Walks the tree; errors name the operator's column and the whole text.
class Evaluator {
 public:
  Evaluator(const NameLookup& lookup, const std::string& text, const std::string& where)
      : lookup_(lookup), text_(text), where_(where) {}

  ExprValue operator()(const Expr::Node& node) const {
    switch (node.kind) {
      case Expr::Node::Kind::literal:
        return node.value;
      case Expr::Node::Kind::name: {
        std::optional<ExprValue> value = lookup_(node.name);
        if (!value) throw InputError(prefix(where_) + "unknown name '" + node.name + "' in " + quoted(text_));
        return *value;
      }
      case Expr::Node::Kind::unary:
        return unary(node);
      case Expr::Node::Kind::binary:
        return binary(node);
    }
    return false;
  }

 private:
  [[noreturn]] void fail(const Expr::Node& node, const std::string& what) const {
    throw InputError(prefix(where_) + what + " at column " + std::to_string(node.column) + " in " + quoted(text_));
  }

  // Built by appending: g++ 12 misreports "'" + std::string(...) as an overlapping copy (-Wrestrict).
  std::string op_name(const Expr::Node& node) const {
    std::string name = "'";
    name += symbol(node.op);
    return name += '\'';
  }

  bool boolean(const Expr::Node& node, const ExprValue& value) const {
    if (!std::holds_alternative<bool>(value)) fail(node, op_name(node) + " needs booleans, got " + describe(value));
    return std::get<bool>(value);
  }

  ExprValue unary(const Expr::Node& node) const {
    const ExprValue operand = (*this)(*node.lhs);
    if (node.op == Op::not_) {
      if (!std::holds_alternative<bool>(operand)) fail(node, "'!' needs a boolean, got " + describe(operand));
      return !std::get<bool>(operand);
    }
    if (!std::holds_alternative<double>(operand)) fail(node, "'-' needs a number, got " + describe(operand));
    return -std::get<double>(operand);
  }

  ExprValue binary(const Expr::Node& node) const {
    // The logical operators look at their right side only when it decides the
    // result, so "shard.group != 0 -> world % shard.group == 0" is safe.
    switch (node.op) {
      case Op::implies: return !boolean(node, (*this)(*node.lhs)) || boolean(node, (*this)(*node.rhs));
      case Op::or_: return boolean(node, (*this)(*node.lhs)) || boolean(node, (*this)(*node.rhs));
      case Op::and_: return boolean(node, (*this)(*node.lhs)) && boolean(node, (*this)(*node.rhs));
      default: break;
    }
    const ExprValue lhs = (*this)(*node.lhs);
    const ExprValue rhs = (*this)(*node.rhs);
    const bool numbers = std::holds_alternative<double>(lhs) && std::holds_alternative<double>(rhs);
    const std::string operands = describe(lhs) + " and " + describe(rhs);
    if (node.op == Op::eq || node.op == Op::ne) {
      if (lhs.index() != rhs.index()) fail(node, op_name(node) + " compares values of one type, got " + operands);
      return (lhs == rhs) == (node.op == Op::eq);
    }
    if (!numbers) {
      const bool ordering = node.op == Op::lt || node.op == Op::le || node.op == Op::gt || node.op == Op::ge;
      fail(node, op_name(node) + (ordering ? " orders numbers only, got " : " needs numbers, got ") + operands);
    }
    const double a = std::get<double>(lhs), b = std::get<double>(rhs);
    switch (node.op) {
      case Op::lt: return a < b;
      case Op::le: return a <= b;
      case Op::gt: return a > b;
      case Op::ge: return a >= b;
      case Op::add: return a + b;
      case Op::sub: return a - b;
      case Op::mul: return a * b;
      case Op::div:
        if (b == 0) fail(node, "division by zero");
        return a / b;
      case Op::mod:
        if (b == 0) fail(node, "modulo by zero");
        return std::fmod(a, b);
      default: break;
    }
    throw std::logic_error("Expr: unhandled operator " + std::string(symbol(node.op)));
  }

  const NameLookup& lookup_;
  const std::string& text_;
  const std::string& where_;
};

}  // namespace

Expr Expr::parse(std::string_view text, std::string_view where) {
  Parser parser(text, where);
  Expr expr;
  expr.root_ = parser.parse_all();
  expr.names_ = std::move(parser.names);
  expr.text_ = std::string(text);
  expr.where_ = std::string(where);
  return expr;
}

ExprValue Expr::evaluate(const NameLookup& lookup) const {
  if (!root_) throw std::logic_error("Expr: evaluated before it was parsed");
  return Evaluator(lookup, text_, where_)(*root_);
}

bool Expr::test(const NameLookup& lookup) const {
  const ExprValue value = evaluate(lookup);
  if (!std::holds_alternative<bool>(value)) {
    throw InputError(prefix(where_) + "expected a condition (true or false), got " + describe(value) + " from " +
                     quoted(text_));
  }
  return std::get<bool>(value);
}

const std::vector<std::string>& Expr::names() const { return names_; }
const std::string& Expr::text() const { return text_; }

// Numbers print as integers when they are whole (17179869184, not 1.7e10) and
// otherwise with the fewest digits that read back to the same double; strings
// print quoted, as they are written in an expression.
std::string to_string(const ExprValue& value) {
  if (const double* number = std::get_if<double>(&value)) {
    // to_chars and from_chars, as "%.0f", "%.15g" and "%.17g" in the C locale
    // whatever the user's locale (the viewer runs under it).
    char text[64];
    const auto print = [&](double x, std::chars_format format, int precision) {
      return std::string(text, std::to_chars(text, text + sizeof text, x, format, precision).ptr);
    };
    if (std::isfinite(*number) && *number == std::trunc(*number) && std::fabs(*number) < 1e15) {
      return print(*number == 0 ? 0.0 : *number, std::chars_format::fixed, 0);  // no "-0"
    }
    const std::string shorter = print(*number, std::chars_format::general, 15);
    double read_back = 0;
    std::from_chars(shorter.data(), shorter.data() + shorter.size(), read_back);
    return read_back == *number ? shorter : print(*number, std::chars_format::general, 17);
  }
  if (const std::string* string = std::get_if<std::string>(&value)) return "\"" + *string + "\"";
  return std::get<bool>(value) ? "true" : "false";
}

}  // namespace memfront
