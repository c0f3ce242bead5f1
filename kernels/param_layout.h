#pragma once
// Where each parameter of the GPT model lives in one flat fp32 array, and how
// it is initialized.
//
// The array is cut into units, the pieces that sharding strategies partition,
// gather and reduce one at a time: unit 0 is the embedding [wte (V,C), wpe (T,C)],
// units 1..L are the blocks, unit L+1 is the final LayerNorm [lnfw, lnfb]. Their
// sizes are the closed forms of core (ParamUnits in core/closed_forms.h, which
// the cost model predicts with too); this says where each tensor lies.
#include <cstdint>

#include "core/closed_forms.h"
#include "core/config.h"

namespace memfront {

// Parameters of one block, as pointers into its unit (params or gradients).
struct BlockParams {
  float* ln1w;     // (C)
  float* ln1b;     // (C)
  float* qkvw;     // (3C, C)
  float* qkvb;     // (3C)
  float* projw;    // (C, C)
  float* projb;    // (C)
  float* ln2w;     // (C)
  float* ln2b;     // (C)
  float* fcw;      // (4C, C)
  float* fcb;      // (4C)
  float* fcprojw;  // (C, 4C)
  float* fcprojb;  // (C)
};

struct ParamLayout {
  explicit ParamLayout(const ModelShape& shape);

  int layers, width;
  uint64_t wte, wpe;     // offsets in the flat array: wte (V,C), wpe (T,C)
  uint64_t first_block;  // offset of block 0
  uint64_t block_size;   // 12C^2 + 13C
  uint64_t lnfw, lnfb;   // (C) each
  uint64_t total;        // parameter count Psi

  int unit_count() const { return layers + 2; }
  int embedding_unit() const { return 0; }
  int block_unit(int layer) const { return 1 + layer; }
  int final_norm_unit() const { return layers + 1; }
  uint64_t unit_begin(int unit) const;
  uint64_t unit_size(int unit) const;

  // The tensors of a block, given the start of its unit.
  BlockParams block(float* unit_base) const;
  // Same, given the start of the flat array.
  BlockParams block(float* base, int layer) const { return block(base + unit_begin(block_unit(layer))); }
};

// Writes unit `unit`'s initial values (unit_size floats): GPT-2 style, N(0, 0.02)
// weights with the residual projections scaled by 1/sqrt(2L), zero biases,
// LayerNorm gains of one. Each unit draws from its own seeded stream, so a rank
// that holds only a shard can build it without the whole model.
void init_unit_params(float* out, int unit, const ParamLayout& layout, uint64_t seed);

}  // namespace memfront
