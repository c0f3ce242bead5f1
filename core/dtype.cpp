#include "core/dtype.h"

namespace memfront {

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::fp32: return "fp32";
    case DType::bf16: return "bf16";
    case DType::fp8e4m3: return "fp8e4m3";
    case DType::int8: return "int8";
    case DType::int4: return "int4";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType d : {DType::fp32, DType::bf16, DType::fp8e4m3, DType::int8, DType::int4}) {
    if (name == to_string(d)) return d;
  }
  return std::nullopt;
}

int dtype_bits(DType dtype) {
  switch (dtype) {
    case DType::fp32: return 32;
    case DType::bf16: return 16;
    case DType::fp8e4m3: return 8;
    case DType::int8: return 8;
    case DType::int4: return 4;
  }
  return 0;
}

bool dtype_is_scaled(DType dtype) {
  return dtype == DType::fp8e4m3 || dtype == DType::int8 || dtype == DType::int4;
}

}  // namespace memfront
