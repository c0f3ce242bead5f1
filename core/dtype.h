#pragma once
// Number formats that memfront stores or sends tensors in.
#include <cstddef>
#include <optional>
#include <string_view>

namespace memfront {

enum class DType { fp32, bf16, fp8e4m3, int8, int4 };

std::string_view to_string(DType dtype);
std::optional<DType> parse_dtype(std::string_view name);

// Bits one element takes in storage (scales of the scaled formats not included).
int dtype_bits(DType dtype);

// fp8 and the integer formats carry a separate fp32 scale per row or block.
bool dtype_is_scaled(DType dtype);

}  // namespace memfront
