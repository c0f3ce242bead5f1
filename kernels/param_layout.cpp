#include "kernels/param_layout.h"

#include <algorithm>
#include <cmath>

#include "kernels/data.h"

namespace memfront {

// The units' sizes are core's (ParamUnits); here is where they lie.
ParamLayout::ParamLayout(const ModelShape& s) : layers(s.layers), width(s.width) {
  const ParamUnits units(s);
  const uint64_t V = s.vocab, C = s.width, L = s.layers;
  wte = 0;
  wpe = V * C;
  first_block = units.embedding;
  block_size = units.block;
  lnfw = first_block + L * block_size;
  lnfb = lnfw + C;
  total = units.total;
}

uint64_t ParamLayout::unit_begin(int unit) const {
  if (unit == embedding_unit()) return 0;
  if (unit == final_norm_unit()) return lnfw;
  return first_block + static_cast<uint64_t>(unit - 1) * block_size;
}

uint64_t ParamLayout::unit_size(int unit) const {
  if (unit == embedding_unit()) return first_block;
  if (unit == final_norm_unit()) return total - lnfw;
  return block_size;
}

BlockParams ParamLayout::block(float* p) const {
  const uint64_t c = width;
  BlockParams b;
  b.ln1w = p;     p += c;
  b.ln1b = p;     p += c;
  b.qkvw = p;     p += 3 * c * c;
  b.qkvb = p;     p += 3 * c;
  b.projw = p;    p += c * c;
  b.projb = p;    p += c;
  b.ln2w = p;     p += c;
  b.ln2b = p;     p += c;
  b.fcw = p;      p += 4 * c * c;
  b.fcb = p;      p += 4 * c;
  b.fcprojw = p;  p += 4 * c * c;
  b.fcprojb = p;
  return b;
}

namespace {

void fill_normal(float* p, uint64_t n, float stddev, uint64_t& state) {
  for (uint64_t i = 0; i < n; i += 2) {
    // Box-Muller: two independent normals from two uniforms.
    const double u1 = 1.0 - uniform01(state), u2 = uniform01(state);
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = static_cast<float>(stddev * r * std::cos(2 * M_PI * u2));
    if (i + 1 < n) p[i + 1] = static_cast<float>(stddev * r * std::sin(2 * M_PI * u2));
  }
}

void fill(float* p, uint64_t n, float value) { std::fill(p, p + n, value); }

}  // namespace

void init_unit_params(float* out, int unit, const ParamLayout& layout, uint64_t seed) {
  uint64_t state = seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(unit + 1));
  splitmix64(state);
  const uint64_t C = layout.width;
  if (unit == layout.embedding_unit()) {
    fill_normal(out, layout.unit_size(unit), 0.02f, state);  // wte and wpe
    return;
  }
  if (unit == layout.final_norm_unit()) {
    fill(out, C, 1.0f);      // lnfw
    fill(out + C, C, 0.0f);  // lnfb
    return;
  }
  const float residual_std = 0.02f / std::sqrt(2.0f * layout.layers);
  BlockParams b = layout.block(out);
  fill(b.ln1w, C, 1.0f);
  fill(b.ln1b, C, 0.0f);
  fill_normal(b.qkvw, 3 * C * C, 0.02f, state);
  fill(b.qkvb, 3 * C, 0.0f);
  fill_normal(b.projw, C * C, residual_std, state);
  fill(b.projb, C, 0.0f);
  fill(b.ln2w, C, 1.0f);
  fill(b.ln2b, C, 0.0f);
  fill_normal(b.fcw, 4 * C * C, 0.02f, state);
  fill(b.fcb, 4 * C, 0.0f);
  fill_normal(b.fcprojw, 4 * C * C, residual_std, state);
  fill(b.fcprojb, C, 0.0f);
}

}  // namespace memfront
