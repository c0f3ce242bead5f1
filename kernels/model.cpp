#include "kernels/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/annotate.h"
#include "kernels/cpu/ops.h"
#include "kernels/data.h"
#include "kernels/quantize.h"

namespace memfront {

using annotate::Phase;
using annotate::Range;

namespace {

// A tensor kept from forward for backward, stored in the activation format.
class SavedTensor {
 public:
  void store(Ops& ops, Arena& arena, const float* src, uint64_t rows, uint64_t cols, DType format,
             MemCategory category, const std::string& name) {
    Range range("quantize");
    rows_ = rows;
    cols_ = cols;
    format_ = format;
    codes_ = arena.allocate(row_quantized_data_bytes(format, rows, cols), category, name);
    if (uint64_t scale_bytes = row_quantized_scale_bytes(format, rows)) {
      scales_ = arena.allocate(scale_bytes, category, name + ".scale");
    }
    ops.quantize_rows(codes_.data(), scales_.as<float>(), src, rows, cols, format);
  }

  // fp32 storage without a copy: allocates the stored array, charged as
  // store() would charge it, and returns it for the forward pass to write its
  // output into. Null for the other formats: the forward writes its own
  // buffer, and store() converts it.
  float* keep_in_place(Arena& arena, uint64_t rows, uint64_t cols, DType format, MemCategory category,
                       const std::string& name) {
    if (format != DType::fp32) return nullptr;
    rows_ = rows;
    cols_ = cols;
    format_ = format;
    codes_ = arena.allocate(row_quantized_data_bytes(format, rows, cols), category, name);
    return codes_.as<float>();
  }

  // The values for backward: the stored array itself when it is fp32,
  // otherwise dequantized into `scratch` (rows x cols floats).
  const float* load(Ops& ops, float* scratch) const {
    if (format_ == DType::fp32) return codes_.as<float>();
    Range range("dequantize");
    ops.dequantize_rows(scratch, codes_.data(), scales_.as<float>(), rows_, cols_, format_);
    return scratch;
  }

  explicit operator bool() const { return static_cast<bool>(codes_); }
  void reset() {
    codes_.reset();
    scales_.reset();
  }

 private:
  uint64_t rows_ = 0, cols_ = 0;
  DType format_ = DType::fp32;
  Buffer codes_, scales_;
};

std::string layer_name(int layer, const char* what) {
  std::string name = "l";  // built step by step: g++ 12 misreports `"l" + std::to_string(...)` (-Wrestrict)
  name += std::to_string(layer);
  name += '.';
  name += what;
  return name;
}

}  // namespace

struct Gpt::SavedBlock {
  SavedTensor x_in, ln1, qkv, att, att_out, x_mid, ln2, fc, gelu;
  Buffer ln1_mean, ln1_rstd, ln2_mean, ln2_rstd;
  Buffer att_idx;  // Top-K key indices (uint16)
  void reset() { *this = SavedBlock{}; }
};

struct Gpt::SavedHead {
  SavedTensor x, lnf;
  Buffer lnf_mean, lnf_rstd;
  Buffer probs;  // (N,V) fp32; backward turns it into dlogits in place
};

// Buffers of one block's forward and backward, reused by every block and
// micro-batch (category workspace). Saved tensors are loaded back into the
// forward buffers of the same shape for backward.
struct Gpt::Workspace {
  Buffer tokens_stream_a, stream_a, stream_b;        // residual stream (N,C)
  Buffer dstream_a, dstream_b;                       // its gradient (N,C)
  Buffer x_in, ln1, qkv, att, att_idx, att_out, att_proj, x_mid, ln2, fc, gelu, fc_proj;
  Buffer ln_mean, ln_rstd, ln2_mean, ln2_rstd;       // (N)
  Buffer att_scratch;
  Buffer dgelu, dfc, dln, dx_mid, datt, dqkv;
  Buffer losses;                                     // (N)
};

Gpt::Gpt(const Config& config, Arena& arena, TrainingState* state)
    : config_(config),
      arena_(arena),
      layout_(config.model),
      B_(config.batch.micro),
      T_(config.model.seq),
      C_(config.model.width),
      NH_(config.model.heads),
      L_(config.model.layers),
      V_(config.model.vocab),
      K_(config.topk.attention) {
  if (!state) own_state_ = std::make_unique<TrainingState>(config, layout_, arena, nullptr);
  state_ = state ? state : own_state_.get();
  ops_ = &state_->ops();
  const uint64_t C = C_;

  ws_ = std::make_unique<Workspace>();
  Workspace& w = *ws_;
  const uint64_t N = uint64_t(B_) * T_;
  auto f32 = [&](uint64_t count, const char* name) {
    return arena_.allocate_array<float>(count, MemCategory::workspace, name);
  };
  w.stream_a = f32(N * C, "stream.a");
  w.stream_b = f32(N * C, "stream.b");
  w.dstream_a = f32(N * C, "dstream.a");
  w.dstream_b = f32(N * C, "dstream.b");
  w.x_in = f32(N * C, "x_in");
  w.ln1 = f32(N * C, "ln1");
  w.qkv = f32(N * 3 * C, "qkv");
  const uint64_t att_rows = uint64_t(B_) * NH_ * T_;
  if (K_ == 0) {
    w.att = f32(att_rows * T_, "att");
  } else {
    w.att = f32(att_rows * K_, "att.vals");
    w.att_idx = arena_.allocate_array<uint16_t>(att_rows * K_, MemCategory::workspace, "att.idx");
  }
  w.att_scratch = f32(ops_->attention_scratch_floats(B_, T_, NH_, K_), "att.scratch");
  w.att_out = f32(N * C, "att_out");
  w.att_proj = f32(N * C, "att_proj");
  w.x_mid = f32(N * C, "x_mid");
  w.ln2 = f32(N * C, "ln2");
  w.fc = f32(N * 4 * C, "fc");
  w.gelu = f32(N * 4 * C, "gelu");
  w.fc_proj = f32(N * C, "fc_proj");
  w.ln_mean = f32(N, "ln.mean");
  w.ln_rstd = f32(N, "ln.rstd");
  w.ln2_mean = f32(N, "ln2.mean");
  w.ln2_rstd = f32(N, "ln2.rstd");
  w.dgelu = f32(N * 4 * C, "dgelu");
  w.dfc = f32(N * 4 * C, "dfc");
  w.dln = f32(N * C, "dln");
  w.dx_mid = f32(N * C, "dx_mid");
  w.datt = f32(N * C, "datt");
  w.dqkv = f32(N * 3 * C, "dqkv");
  w.losses = f32(N, "losses");
}

Gpt::~Gpt() = default;

void Gpt::block_forward(int layer, const float* x, float* y, SavedBlock* saved, MemCategory category) {
  Workspace& w = *ws_;
  const int unit = layout_.block_unit(layer);
  const BlockParams p = layout_.block(state_->acquire_params(unit));
  const int N = B_ * T_, C = C_;
  const DType f = config_.precision.activations;
  const uint64_t att_rows = uint64_t(B_) * NH_ * T_;
  const uint64_t att_cols = K_ == 0 ? T_ : K_;

  // Where each output goes: into the saved tensor itself when forward keeps it
  // as fp32 (no copy), otherwise into the workspace buffer, converted below.
  auto output = [&](SavedTensor* kept, Buffer& buffer, uint64_t rows, uint64_t cols, const char* name) {
    float* in_place = kept ? kept->keep_in_place(arena_, rows, cols, f, category, layer_name(layer, name)) : nullptr;
    return in_place ? in_place : buffer.as<float>();
  };
  // LayerNorm statistics are kept as fp32 in every format: written where they are kept.
  auto stats = [&](Buffer* kept, Buffer& buffer, const char* name) {
    if (!saved) return buffer.as<float>();
    *kept = arena_.allocate_array<float>(N, category, layer_name(layer, name));
    return kept->as<float>();
  };
  if (saved && !saved->x_in) {  // a recomputed segment's first block adopts its checkpoint
    saved->x_in.store(*ops_, arena_, x, N, C, f, category, layer_name(layer, "x_in"));
  }
  float* ln1 = output(saved ? &saved->ln1 : nullptr, w.ln1, N, C, "ln1");
  float* ln1_mean = stats(saved ? &saved->ln1_mean : nullptr, w.ln_mean, "ln1.mean");
  float* ln1_rstd = stats(saved ? &saved->ln1_rstd : nullptr, w.ln_rstd, "ln1.rstd");
  float* qkv = output(saved ? &saved->qkv : nullptr, w.qkv, N, 3 * C, "qkv");
  float* att = output(saved ? &saved->att : nullptr, w.att, att_rows, att_cols, "att");
  uint16_t* att_idx = w.att_idx.as<uint16_t>();
  if (saved && K_ != 0) {
    saved->att_idx = arena_.allocate_array<uint16_t>(att_rows * K_, category, layer_name(layer, "att.idx"));
    att_idx = saved->att_idx.as<uint16_t>();
  }
  float* att_out = output(saved ? &saved->att_out : nullptr, w.att_out, N, C, "att_out");
  float* att_proj = w.att_proj.as<float>();
  float* x_mid = output(saved ? &saved->x_mid : nullptr, w.x_mid, N, C, "x_mid");
  float* ln2 = output(saved ? &saved->ln2 : nullptr, w.ln2, N, C, "ln2");
  float* ln2_mean = stats(saved ? &saved->ln2_mean : nullptr, w.ln2_mean, "ln2.mean");
  float* ln2_rstd = stats(saved ? &saved->ln2_rstd : nullptr, w.ln2_rstd, "ln2.rstd");
  float* fc = output(saved ? &saved->fc : nullptr, w.fc, N, 4 * C, "fc");
  float* gelu = output(saved ? &saved->gelu : nullptr, w.gelu, N, 4 * C, "gelu");
  float* fc_proj = w.fc_proj.as<float>();

  ops_->layernorm_forward(ln1, ln1_mean, ln1_rstd, x, p.ln1w, p.ln1b, N, C);
  ops_->matmul_forward(qkv, ln1, p.qkvw, p.qkvb, N, C, 3 * C);
  if (K_ == 0) {
    ops_->attention_forward(att_out, att, qkv, w.att_scratch.as<float>(), B_, T_, C, NH_);
    flops_ += cpu::attention_forward_flops(B_, T_, C, NH_);
  } else {
    Range range("topk");
    ops_->attention_topk_forward(att_out, att, att_idx, qkv, w.att_scratch.as<float>(), B_, T_, C, NH_, K_);
    flops_ += cpu::attention_topk_forward_flops(B_, T_, C, NH_, K_);
  }
  ops_->matmul_forward(att_proj, att_out, p.projw, p.projb, N, C, C);
  ops_->residual_forward(x_mid, x, att_proj, uint64_t(N) * C);
  ops_->layernorm_forward(ln2, ln2_mean, ln2_rstd, x_mid, p.ln2w, p.ln2b, N, C);
  ops_->matmul_forward(fc, ln2, p.fcw, p.fcb, N, C, 4 * C);
  ops_->gelu_forward(gelu, fc, uint64_t(N) * 4 * C);
  ops_->matmul_forward(fc_proj, gelu, p.fcprojw, p.fcprojb, N, 4 * C, C);
  ops_->residual_forward(y, x_mid, fc_proj, uint64_t(N) * C);
  flops_ += cpu::matmul_forward_flops(N, C, 3 * C) + cpu::matmul_forward_flops(N, C, C) +
            cpu::matmul_forward_flops(N, C, 4 * C) + cpu::matmul_forward_flops(N, 4 * C, C);
  state_->release_params(unit);

  if (!saved || f == DType::fp32) return;  // fp32: already kept where it was written
  auto convert = [&](SavedTensor& t, const float* src, uint64_t rows, uint64_t cols, const char* name) {
    t.store(*ops_, arena_, src, rows, cols, f, category, layer_name(layer, name));
  };
  convert(saved->ln1, ln1, N, C, "ln1");
  convert(saved->qkv, qkv, N, 3 * C, "qkv");
  convert(saved->att, att, att_rows, att_cols, "att");
  convert(saved->att_out, att_out, N, C, "att_out");
  convert(saved->x_mid, x_mid, N, C, "x_mid");
  convert(saved->ln2, ln2, N, C, "ln2");
  convert(saved->fc, fc, N, 4 * C, "fc");
  convert(saved->gelu, gelu, N, 4 * C, "gelu");
}

void Gpt::block_backward(int layer, SavedBlock& s, const float* dy, float* dx) {
  Workspace& w = *ws_;
  const int unit = layout_.block_unit(layer);
  const BlockParams p = layout_.block(state_->acquire_params(unit));
  const BlockParams g = layout_.block(state_->acquire_grads(unit));
  const int N = B_ * T_, C = C_;
  const uint64_t NC = uint64_t(N) * C;

  // Saved tensors, dequantized into the forward buffers of the same shape.
  const float* x_in = s.x_in.load(*ops_, w.x_in.as<float>());
  const float* ln1 = s.ln1.load(*ops_, w.ln1.as<float>());
  const float* qkv = s.qkv.load(*ops_, w.qkv.as<float>());
  const float* att = s.att.load(*ops_, w.att.as<float>());
  const float* att_out = s.att_out.load(*ops_, w.att_out.as<float>());
  const float* x_mid = s.x_mid.load(*ops_, w.x_mid.as<float>());
  const float* ln2 = s.ln2.load(*ops_, w.ln2.as<float>());
  const float* fc = s.fc.load(*ops_, w.fc.as<float>());
  const float* gelu = s.gelu.load(*ops_, w.gelu.as<float>());

  float* dgelu = w.dgelu.as<float>();
  float* dfc = w.dfc.as<float>();
  float* dln = w.dln.as<float>();
  float* dx_mid = w.dx_mid.as<float>();
  float* datt = w.datt.as<float>();
  float* dqkv = w.dqkv.as<float>();
  // Backward ops accumulate, so every gradient buffer starts from zero.
  ops_->fill(dgelu, NC * 4, 0.0f);
  ops_->fill(dfc, NC * 4, 0.0f);
  ops_->fill(dln, NC, 0.0f);
  ops_->fill(datt, NC, 0.0f);
  ops_->fill(dqkv, NC * 3, 0.0f);

  // y = x_mid + fc_proj(gelu(fc(ln2(x_mid)))): dy flows into x_mid directly and through the MLP.
  ops_->copy(dx_mid, dy, NC * sizeof(float));
  ops_->matmul_backward(dgelu, g.fcprojw, g.fcprojb, dy, gelu, p.fcprojw, N, 4 * C, C);
  ops_->gelu_backward(dfc, fc, dgelu, NC * 4);
  ops_->matmul_backward(dln, g.fcw, g.fcb, dfc, ln2, p.fcw, N, C, 4 * C);
  ops_->layernorm_backward(dx_mid, g.ln2w, g.ln2b, dln, x_mid, p.ln2w, s.ln2_mean.as<float>(),
                          s.ln2_rstd.as<float>(), N, C);

  // x_mid = x + proj(attention(qkv(ln1(x)))): likewise.
  ops_->copy(dx, dx_mid, NC * sizeof(float));
  ops_->matmul_backward(datt, g.projw, g.projb, dx_mid, att_out, p.projw, N, C, C);
  if (K_ == 0) {
    ops_->attention_backward(dqkv, datt, qkv, att, w.att_scratch.as<float>(), B_, T_, C, NH_);
    flops_ += cpu::attention_backward_flops(B_, T_, C, NH_);
  } else {
    Range range("topk");
    ops_->attention_topk_backward(dqkv, datt, qkv, att, s.att_idx.as<uint16_t>(), w.att_scratch.as<float>(), B_, T_,
                                 C, NH_, K_);
    flops_ += cpu::attention_topk_backward_flops(B_, T_, C, NH_, K_);
  }
  ops_->fill(dln, NC, 0.0f);
  ops_->matmul_backward(dln, g.qkvw, g.qkvb, dqkv, ln1, p.qkvw, N, C, 3 * C);
  ops_->layernorm_backward(dx, g.ln1w, g.ln1b, dln, x_in, p.ln1w, s.ln1_mean.as<float>(), s.ln1_rstd.as<float>(), N,
                          C);
  flops_ += cpu::matmul_backward_flops(N, C, 3 * C) + cpu::matmul_backward_flops(N, C, C) +
            cpu::matmul_backward_flops(N, C, 4 * C) + cpu::matmul_backward_flops(N, 4 * C, C);
  state_->release_grads(unit);
  state_->release_params(unit);
}

float Gpt::head_forward(const float* x, const int32_t* targets, SavedHead& saved, MemCategory probs_category) {
  Workspace& w = *ws_;
  const int N = B_ * T_, C = C_, V = V_;
  const DType f = config_.precision.activations;
  // Kept for backward only in training (probabilities under activations); the
  // final LayerNorm's output and statistics are written where they are kept,
  // as in block_forward.
  const bool keep = probs_category == MemCategory::activations;
  float* lnf = keep ? saved.lnf.keep_in_place(arena_, N, C, f, MemCategory::activations, "lnf") : nullptr;
  if (!lnf) lnf = w.ln1.as<float>();
  float* lnf_mean = w.ln_mean.as<float>();
  float* lnf_rstd = w.ln_rstd.as<float>();
  if (keep) {
    saved.x.store(*ops_, arena_, x, N, C, f, MemCategory::activations, "lnf.x");
    saved.lnf_mean = arena_.allocate_array<float>(N, MemCategory::activations, "lnf.mean");
    saved.lnf_rstd = arena_.allocate_array<float>(N, MemCategory::activations, "lnf.rstd");
    lnf_mean = saved.lnf_mean.as<float>();
    lnf_rstd = saved.lnf_rstd.as<float>();
  }
  const float* embedding = state_->acquire_params(layout_.embedding_unit());
  const float* norm = state_->acquire_params(layout_.final_norm_unit());  // [lnfw (C), lnfb (C)]
  ops_->layernorm_forward(lnf, lnf_mean, lnf_rstd, x, norm, norm + C, N, C);
  saved.probs = arena_.allocate_array<float>(uint64_t(N) * V, probs_category, "probs");
  float* probs = saved.probs.as<float>();
  ops_->matmul_forward(probs, lnf, embedding + layout_.wte, nullptr, N, C, V);  // logits, tied to wte
  flops_ += cpu::matmul_forward_flops(N, C, V);
  state_->release_params(layout_.final_norm_unit());
  state_->release_params(layout_.embedding_unit());
  float* losses = w.losses.as<float>();
  ops_->softmax_crossentropy_forward(losses, probs, probs, targets, N, V);
  const double sum = ops_->sum(losses, N);

  if (keep && f != DType::fp32) saved.lnf.store(*ops_, arena_, lnf, N, C, f, MemCategory::activations, "lnf");
  return static_cast<float>(sum / N);
}

void Gpt::head_backward(SavedHead& s, const int32_t* targets, float loss_weight, float* dwte, float* dx) {
  Workspace& w = *ws_;
  const int N = B_ * T_, C = C_, V = V_;
  const float* embedding = state_->acquire_params(layout_.embedding_unit());
  const float* norm = state_->acquire_params(layout_.final_norm_unit());
  float* dnorm = state_->acquire_grads(layout_.final_norm_unit());
  float* dlogits = s.probs.as<float>();
  ops_->softmax_crossentropy_backward(dlogits, dlogits, targets, loss_weight / N, N, V);
  const float* lnf = s.lnf.load(*ops_, w.ln1.as<float>());
  const float* x = s.x.load(*ops_, w.x_in.as<float>());
  float* dln = w.dln.as<float>();
  ops_->fill(dln, uint64_t(N) * C, 0.0f);
  ops_->matmul_backward(dln, dwte + layout_.wte, nullptr, dlogits, lnf, embedding + layout_.wte, N, C, V);
  flops_ += cpu::matmul_backward_flops(N, C, V);
  ops_->fill(dx, uint64_t(N) * C, 0.0f);
  ops_->layernorm_backward(dx, dnorm, dnorm + C, dln, x, norm, s.lnf_mean.as<float>(), s.lnf_rstd.as<float>(), N, C);
  state_->release_grads(layout_.final_norm_unit());
  state_->release_params(layout_.final_norm_unit());
  state_->release_params(layout_.embedding_unit());
  s = SavedHead{};
}

void Gpt::embedding_forward(const int32_t* inputs, float* x) {
  const float* embedding = state_->acquire_params(layout_.embedding_unit());
  ops_->embedding_forward(x, inputs, embedding + layout_.wte, embedding + layout_.wpe, B_, T_, C_);
  state_->release_params(layout_.embedding_unit());
}

float Gpt::forward_backward(const int32_t* inputs, const int32_t* targets, float loss_weight) {
  Workspace& w = *ws_;
  const int k = config_.checkpoint.every;
  const uint64_t NC = uint64_t(B_) * T_ * C_;
  float* x = w.stream_a.as<float>();
  float* y = w.stream_b.as<float>();

  std::vector<SavedBlock> saved(k == 0 ? L_ : 0);
  std::vector<SavedTensor> checkpoints(k == 0 ? 0 : (L_ + k - 1) / k);
  SavedHead head;
  float loss;
  {
    Range range(Phase::forward);
    embedding_forward(inputs, x);
    for (int l = 0; l < L_; ++l) {
      if (k == 0) {
        block_forward(l, x, y, &saved[l], MemCategory::activations);
      } else {
        if (l % k == 0) {
          checkpoints[l / k].store(*ops_, arena_, x, uint64_t(B_) * T_, C_, config_.precision.activations,
                                   MemCategory::activations, layer_name(l, "checkpoint"));
        }
        block_forward(l, x, y, nullptr, MemCategory::activations);
      }
      std::swap(x, y);
    }
    loss = head_forward(x, targets, head, MemCategory::activations);
  }

  float* dx = w.dstream_a.as<float>();
  float* dy = w.dstream_b.as<float>();
  // The tied embedding collects gradient from the LM head first and from the
  // embedding lookup last; it is held for the whole backward.
  float* dembedding = nullptr;
  {
    Range range(Phase::backward);
    dembedding = state_->acquire_grads(layout_.embedding_unit());
    head_backward(head, targets, loss_weight, dembedding, dy);
    if (k == 0) {
      for (int l = L_ - 1; l >= 0; --l) {
        block_backward(l, saved[l], dy, dx);
        saved[l].reset();
        std::swap(dx, dy);
      }
    }
  }
  if (k != 0) {
    // Segments from the last: recompute the forward of its blocks from the
    // checkpointed input, keeping their activations, then run their backward.
    for (int segment = static_cast<int>(checkpoints.size()) - 1; segment >= 0; --segment) {
      const int first = segment * k, end = std::min(first + k, L_);
      std::vector<SavedBlock> recomputed(end - first);
      {
        Range range(Phase::recompute);
        const float* start = checkpoints[segment].load(*ops_, w.x_in.as<float>());
        ops_->copy(x, start, NC * sizeof(float));
        recomputed[0].x_in = std::move(checkpoints[segment]);
        for (int l = first; l < end; ++l) {
          block_forward(l, x, y, &recomputed[l - first], MemCategory::recompute);
          std::swap(x, y);
        }
      }
      Range range(Phase::backward);
      for (int l = end - 1; l >= first; --l) {
        block_backward(l, recomputed[l - first], dy, dx);
        recomputed[l - first].reset();
        std::swap(dx, dy);
      }
    }
  }
  {
    Range range(Phase::backward);
    ops_->embedding_backward(dembedding + layout_.wte, dembedding + layout_.wpe, dy, inputs, B_, T_, C_);
    state_->release_grads(layout_.embedding_unit());
  }
  return loss;
}

double Gpt::evaluate(const int32_t* inputs, const int32_t* targets, int sequences) {
  Range range(Phase::eval);
  Workspace& w = *ws_;
  float* x = w.stream_a.as<float>();
  float* y = w.stream_b.as<float>();
  embedding_forward(inputs, x);
  for (int l = 0; l < L_; ++l) {
    block_forward(l, x, y, nullptr, MemCategory::workspace);
    std::swap(x, y);
  }
  SavedHead head;
  head_forward(x, targets, head, MemCategory::workspace);  // leaves each token's loss in w.losses
  return ops_->sum(w.losses.as<float>(), size_t(sequences) * T_);
}

}  // namespace memfront
