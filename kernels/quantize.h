#pragma once
// Number-format conversion of tensors that memfront stores or sends in a
// narrower format: saved activations now, gradients and weights on the wire
// later. Real conversions, bit-exact and deterministic.
//
// Row-wise formats (saved activations): rows x cols fp32 values.
// - fp32: copied.   bf16: round to nearest even, no scale.
// - fp8e4m3, int8: one fp32 scale per row, scale = amax(row) / 448 (fp8) or
//   amax(row) / 127 (int8); the stored code is round-to-nearest-even(x / scale)
//   (saturating). A row of zeros has scale 0 and decodes to zeros.
#include <cstdint>

#include "core/closed_forms.h"
#include "core/dtype.h"

namespace memfront {

uint16_t float_to_bf16(float x);   // round to nearest even; NaN stays NaN
float bf16_to_float(uint16_t bits);
uint8_t float_to_fp8e4m3(float x);  // round to nearest even, saturates to +-448, NaN -> 0x7F
float fp8e4m3_to_float(uint8_t bits);

// The bytes of the stored codes and of the scales are closed forms of core:
// row_quantized_data_bytes and row_quantized_scale_bytes (core/closed_forms.h).

// format: fp32, bf16, fp8e4m3 or int8. scales: `rows` floats, null when unscaled.
void quantize_rows(void* codes, float* scales, const float* src, uint64_t rows, uint64_t cols,
                   DType format);
void dequantize_rows(float* dst, const void* codes, const float* scales, uint64_t rows,
                     uint64_t cols, DType format);

}  // namespace memfront
