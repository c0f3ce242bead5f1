#pragma once
// Gradient and weight compression for the wire: blockwise quantization and
// Top-K sparsification, each with error feedback (what was not sent this step
// is kept by the sender and added to the next step's values).
//
// Encoders write into caller-provided byte buffers (the caller takes them from
// the Arena, category comm) whose size the closed forms of core give exactly:
// blockwise_bytes, topk_count and topk_bytes (core/closed_forms.h, which the
// cost model predicts with too).
#include <cstdint>

#include "core/closed_forms.h"
#include "core/dtype.h"

namespace memfront {

// ---------------------------------------------------------------------------
// Blockwise quantization: n values in blocks of `block` (the last may be
// shorter). Payload layout: for the scaled formats, first one fp32 scale per
// block, then the codes; bf16 and fp32 have no scales.
//   fp32: the values.      bf16: round to nearest even.
//   int8: scale = amax(block) / 127, code = round-half-even(x / scale) in [-127, 127].
//   int4: scale = amax(block) / 7, code in [-7, 7], two codes per byte, element
//         2i in the low nibble, 2i+1 in the high one (two's complement nibbles).
// A block of zeros has scale 0 and decodes to zeros.
// ---------------------------------------------------------------------------

void encode_blockwise(void* payload, const float* x, uint64_t n, DType format, int block);
void decode_blockwise(float* x, const void* payload, uint64_t n, DType format, int block);
// x (n) += decoded payload: the receiving side of a compressed reduction.
void add_decoded_blockwise(float* x, const void* payload, uint64_t n, DType format, int block);

// Error feedback around quantization: x (n) += residual; then encode x into
// payload; then residual = x - decode(payload). With residual null, no feedback.
void encode_blockwise_with_feedback(void* payload, float* x, float* residual, uint64_t n, DType format,
                                    int block);

// ---------------------------------------------------------------------------
// Top-K sparsification: the k = topk_count(n, density) entries of largest
// magnitude (ties: the lower index wins), sent as k (uint32 index, fp32 value)
// pairs in ascending index order.
// ---------------------------------------------------------------------------

// Selects from x (n) into payload. scratch: n floats.
void encode_topk(void* payload, const float* x, uint64_t n, uint64_t k, float* scratch);
// dense (n) += the payload's entries. Throws std::invalid_argument on an index >= n.
void add_topk(float* dense, const void* payload, uint64_t k, uint64_t n);

// With error feedback: x (n) += residual; encode the Top-K of x; residual = x
// with the sent entries zeroed. With residual null, no feedback.
void encode_topk_with_feedback(void* payload, float* x, float* residual, uint64_t n, uint64_t k, float* scratch);

}  // namespace memfront
