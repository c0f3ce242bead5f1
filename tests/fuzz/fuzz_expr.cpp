// libFuzzer target: the expression language (tuner/expr.h) on any text,
// parsed and evaluated with every name a number.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "tuner/expr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const memfront::Expr expr = memfront::Expr::parse(text, "fuzz");
    expr.evaluate([](std::string_view name) -> std::optional<memfront::ExprValue> {
      return static_cast<double>(name.size());
    });
  } catch (const memfront::InputError&) {
  }
  return 0;
}
