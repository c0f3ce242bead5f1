#pragma once
// The calibration file: what one machine was measured at by
// memfront-calibrate (kernels/calibrate_main.cpp, its writer), with which the
// cost model (tuner/cost_model.h, its reader) turns a step into seconds. One
// struct and one JSON form for both sides, versioned by its "format" member.
//
// Version 2 times the step's own operations: every kernel the step calls
// (the GEMMs on the shapes the model runs, attention, LayerNorm, GELU, the
// quantizers and gradient encoders, AdamW, the fills and copies), each at the
// shapes of the models it was asked for, as a median per call with its
// spread. The cost model looks a call up by its operation and shape, or
// interpolates between the measured sizes of that operation (op_seconds).
// The link between ranks keeps a latency and a bandwidth, measured through
// memfront's own communicator.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"

namespace memfront {

inline constexpr std::string_view kCalibrationFormat = "memfront.calibration/2";

// The operations of a step that are timed, each named as in kernels/cpu/ops.h
// (or kernels/compress.h, kernels/quantize.h) with the dimensions of its call:
//   matmul_forward, matmul_backward          N, in, out
//   attention_forward, attention_backward     B, T, C, heads
//   attention_topk_forward, _backward         B, T, C, heads, K
//   layernorm_forward, layernorm_backward     N, C
//   softmax_crossentropy_forward, _backward   N, V
//   embedding_forward, embedding_backward     B, T, C
//   gelu_forward, gelu_backward, residual_forward, adamw, fill, copy, add   n (values)
//   quantize_rows, dequantize_rows            rows, cols       (with a format)
//   encode_grad (blockwise with error feedback), add_decoded, encode_weights, decode_weights   n (with a format)
//   encode_topk (with error feedback)         n, k
//   add_topk                                  n, k
// Its "work" is what its time grows with: FLOPs for the GEMMs and attention,
// values for the rest; interpolation between shapes goes by work.
enum class StepOp {
  matmul_forward,
  matmul_backward,
  attention_forward,
  attention_backward,
  attention_topk_forward,
  attention_topk_backward,
  layernorm_forward,
  layernorm_backward,
  softmax_crossentropy_forward,
  softmax_crossentropy_backward,
  embedding_forward,
  embedding_backward,
  gelu_forward,
  gelu_backward,
  residual_forward,
  adamw,
  fill,
  copy,
  add,
  quantize_rows,
  dequantize_rows,
  encode_grad,
  add_decoded,
  encode_weights,
  decode_weights,
  encode_topk,
  add_topk,
};
std::string_view to_string(StepOp op);
std::optional<StepOp> parse_step_op(std::string_view name);
// Whether the op converts to or from a number format (OpCall::format is read).
bool step_op_has_format(StepOp op);
// What an op's work counts: the FLOPs of a GEMM, the FLOPs of attention,
// or values; the GEMM and attention FLOPs are the ones the kernels count.
enum class StepOpWork { gemm_flops, attention_flops, values };
StepOpWork step_op_work(StepOp op);
bool step_op_counts_flops(StepOp op);

// One call of an operation: what the cost model asks the calibration for.
struct OpCall {
  StepOp op;
  std::vector<int64_t> dims;   // as listed above
  DType format = DType::fp32;  // for the ops with a format only
  // FLOPs or values, from the dims (the closed forms of the kernels' counts).
  double work() const;
  friend bool operator==(const OpCall&, const OpCall&) = default;
};

// One operation measured at one shape: seconds per call.
struct OpTiming {
  OpCall call;
  double median_s = 0, p10_s = 0, p90_s = 0;
  int samples = 0;
};

// Measured with one BLAS thread per rank, as the trials run, with all ranks
// measuring at once; the slowest rank's figures are kept. The rates are what
// the cost model falls back on for an operation that was not timed (and all
// it has when nothing was measured).
struct Calibration {
  bool measured = false;               // false: built-in defaults, say so beside every prediction
  std::string host;
  std::string created;                 // ISO 8601 UTC
  // The machine while it was measured: load average before and after, and the
  // share of the time the ranks waited for a CPU (schedstat); `loaded` when
  // memfront-calibrate judged the figures disturbed and was told to keep them.
  double load_before = 0, load_after = 0, run_delay_share = 0;
  bool loaded = false;
  double gemm_flops_per_s = 50e9;      // fallbacks: cblas_sgemm on the step's GEMM shapes
  double attention_flops_per_s = 8e9;  // the attention kernels
  double memory_bytes_per_s = 10e9;    // streaming, for the memory-bound ops
  double link_latency_s = 5e-6;        // intra-node message latency (MPI point-to-point on this host)
  double link_bytes_per_s = 5e9;       // intra-node bandwidth
  std::vector<OpTiming> ops;
};

// Seconds of one call: the timing of the same call if it was measured,
// otherwise interpolated in log(work)-log(seconds) between the nearest
// measured sizes of the same op (and format), at the nearest one's rate
// beyond them, and from the fallback rates when the op was never timed.
double op_seconds(const Calibration& calibration, const OpCall& call);

nlohmann::json to_json(const Calibration& calibration);
// Strict: every member present with its type and range, nothing else, and the
// format this memfront writes. Errors are InputError "<where>: <json pointer>: ...".
Calibration calibration_from_json(const nlohmann::json& json, std::string_view where);
// Written beside `path` and renamed over it, so that a reader never sees half
// a file; creates the parent directories.
void save_calibration(const std::filesystem::path& path, const Calibration& calibration);

}  // namespace memfront
