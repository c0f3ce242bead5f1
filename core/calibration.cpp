#include "core/calibration.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "core/closed_forms.h"
#include "core/jsonl.h"
#include "core/strict_json.h"

namespace memfront {

using nlohmann::json;

namespace {

struct StepOpInfo {
  StepOp op;
  std::string_view name;
  size_t dims;      // how many dimensions a call has
  bool has_format;
  StepOpWork work;  // what its work counts, for the fallback rates
};

constexpr std::array kStepOps = {
    StepOpInfo{StepOp::matmul_forward, "matmul_forward", 3, false, StepOpWork::gemm_flops},
    StepOpInfo{StepOp::matmul_backward, "matmul_backward", 3, false, StepOpWork::gemm_flops},
    StepOpInfo{StepOp::attention_forward, "attention_forward", 4, false, StepOpWork::attention_flops},
    StepOpInfo{StepOp::attention_backward, "attention_backward", 4, false, StepOpWork::attention_flops},
    StepOpInfo{StepOp::attention_topk_forward, "attention_topk_forward", 5, false, StepOpWork::attention_flops},
    StepOpInfo{StepOp::attention_topk_backward, "attention_topk_backward", 5, false, StepOpWork::attention_flops},
    StepOpInfo{StepOp::layernorm_forward, "layernorm_forward", 2, false, StepOpWork::values},
    StepOpInfo{StepOp::layernorm_backward, "layernorm_backward", 2, false, StepOpWork::values},
    StepOpInfo{StepOp::softmax_crossentropy_forward, "softmax_crossentropy_forward", 2, false, StepOpWork::values},
    StepOpInfo{StepOp::softmax_crossentropy_backward, "softmax_crossentropy_backward", 2, false, StepOpWork::values},
    StepOpInfo{StepOp::embedding_forward, "embedding_forward", 3, false, StepOpWork::values},
    StepOpInfo{StepOp::embedding_backward, "embedding_backward", 3, false, StepOpWork::values},
    StepOpInfo{StepOp::gelu_forward, "gelu_forward", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::gelu_backward, "gelu_backward", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::residual_forward, "residual_forward", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::adamw, "adamw", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::fill, "fill", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::copy, "copy", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::add, "add", 1, false, StepOpWork::values},
    StepOpInfo{StepOp::quantize_rows, "quantize_rows", 2, true, StepOpWork::values},
    StepOpInfo{StepOp::dequantize_rows, "dequantize_rows", 2, true, StepOpWork::values},
    StepOpInfo{StepOp::encode_grad, "encode_grad", 1, true, StepOpWork::values},
    StepOpInfo{StepOp::add_decoded, "add_decoded", 1, true, StepOpWork::values},
    StepOpInfo{StepOp::encode_weights, "encode_weights", 1, true, StepOpWork::values},
    StepOpInfo{StepOp::decode_weights, "decode_weights", 1, true, StepOpWork::values},
    StepOpInfo{StepOp::encode_topk, "encode_topk", 2, false, StepOpWork::values},
    StepOpInfo{StepOp::add_topk, "add_topk", 2, false, StepOpWork::values},
};

const StepOpInfo& info(StepOp op) {
  for (const StepOpInfo& i : kStepOps) {
    if (i.op == op) return i;
  }
  throw std::logic_error("StepOp without an entry in kStepOps");
}

// Without a timing of the op: its FLOPs at the fallback GEMM or attention
// rate, or, for the memory-bound ops, about three fp32 streams per value.
double fallback_seconds(const Calibration& c, const OpCall& call) {
  switch (info(call.op).work) {
    case StepOpWork::gemm_flops: return call.work() / c.gemm_flops_per_s;
    case StepOpWork::attention_flops: return call.work() / c.attention_flops_per_s;
    case StepOpWork::values: break;
  }
  return call.work() * 12.0 / c.memory_bytes_per_s;
}

}  // namespace

std::string_view to_string(StepOp op) { return info(op).name; }

std::optional<StepOp> parse_step_op(std::string_view name) {
  for (const StepOpInfo& i : kStepOps) {
    if (i.name == name) return i.op;
  }
  return std::nullopt;
}

bool step_op_has_format(StepOp op) { return info(op).has_format; }

StepOpWork step_op_work(StepOp op) { return info(op).work; }

bool step_op_counts_flops(StepOp op) { return info(op).work != StepOpWork::values; }

double OpCall::work() const {
  auto d = [&](size_t i) { return static_cast<int>(dims.at(i)); };
  auto values = [&] {
    double product = 1;
    for (int64_t v : dims) product *= static_cast<double>(v);
    return product;
  };
  switch (op) {
    case StepOp::matmul_forward: return matmul_forward_flops(d(0), d(1), d(2));
    case StepOp::matmul_backward: return matmul_backward_flops(d(0), d(1), d(2));
    case StepOp::attention_forward: return attention_forward_flops(d(0), d(1), d(2));
    case StepOp::attention_backward: return attention_backward_flops(d(0), d(1), d(2));
    case StepOp::attention_topk_forward: return attention_topk_forward_flops(d(0), d(1), d(2), d(4));
    case StepOp::attention_topk_backward: return attention_topk_backward_flops(d(0), d(1), d(2), d(4));
    case StepOp::encode_topk:
    case StepOp::add_topk:
      return static_cast<double>(dims.at(0));  // n values scanned (add_topk's k scattered into n cleared ones)
    default:
      return values();
  }
}

double op_seconds(const Calibration& c, const OpCall& call) {
  // The measured sizes of this op and format, by work.
  std::vector<std::pair<double, double>> points;  // (work, seconds)
  for (const OpTiming& t : c.ops) {
    if (t.call.op != call.op || (step_op_has_format(call.op) && t.call.format != call.format)) continue;
    if (t.call.dims == call.dims) return t.median_s;
    points.emplace_back(t.call.work(), t.median_s);
  }
  const double work = call.work();
  if (points.empty() || work <= 0) return work <= 0 ? 0.0 : fallback_seconds(c, call);
  std::sort(points.begin(), points.end());
  if (work <= points.front().first) return points.front().second * work / points.front().first;
  if (work >= points.back().first) return points.back().second * work / points.back().first;
  const auto above = std::lower_bound(points.begin(), points.end(), std::make_pair(work, 0.0));
  const auto below = above - 1;
  if (above->first == below->first) return above->second * work / above->first;
  const double x = (std::log(work) - std::log(below->first)) / (std::log(above->first) - std::log(below->first));
  return std::exp(std::log(below->second) + x * (std::log(above->second) - std::log(below->second)));
}

json to_json(const Calibration& c) {
  json ops = json::array();
  for (const OpTiming& t : c.ops) {
    json op = {{"op", to_string(t.call.op)}, {"dims", t.call.dims}};
    if (step_op_has_format(t.call.op)) op["format"] = to_string(t.call.format);
    op["median_s"] = t.median_s;
    op["p10_s"] = t.p10_s;
    op["p90_s"] = t.p90_s;
    op["samples"] = t.samples;
    ops.push_back(std::move(op));
  }
  return {{"format", kCalibrationFormat},
          {"measured", c.measured},
          {"host", c.host},
          {"created", c.created},
          {"load_before", c.load_before},
          {"load_after", c.load_after},
          {"run_delay_share", c.run_delay_share},
          {"loaded", c.loaded},
          {"gemm_flops_per_s", c.gemm_flops_per_s},
          {"attention_flops_per_s", c.attention_flops_per_s},
          {"memory_bytes_per_s", c.memory_bytes_per_s},
          {"link_latency_s", c.link_latency_s},
          {"link_bytes_per_s", c.link_bytes_per_s},
          {"ops", std::move(ops)}};
}

namespace {

OpTiming op_timing_from_json(const JsonField& o) {
  o.expect_object();
  const std::string name = o.string_at("op");
  const std::optional<StepOp> op = parse_step_op(name);
  if (!op) o.fail_below("/op", "unknown operation \"" + name + "\"");
  const StepOpInfo& i = info(*op);
  o.only_keys(i.has_format ? std::initializer_list<std::string_view>{"op", "dims", "format", "median_s", "p10_s",
                                                                     "p90_s", "samples"}
                           : std::initializer_list<std::string_view>{"op", "dims", "median_s", "p10_s", "p90_s",
                                                                     "samples"});
  OpTiming t;
  t.call.op = *op;
  const JsonField dims = o.array_at("dims");
  if (dims.value().size() != i.dims) {
    o.fail_below("/dims", "expected " + std::to_string(i.dims) + " dimensions for " + name + ", got " +
                              std::to_string(dims.value().size()));
  }
  for (size_t d = 0; d < i.dims; ++d) {
    const uint64_t v = dims.element(d).as_unsigned();
    if (v == 0 || v > (uint64_t{1} << 40)) dims.element(d).fail_expected("a dimension from 1 to 2^40");
    t.call.dims.push_back(static_cast<int64_t>(v));
  }
  if (i.has_format) {
    const std::string format = o.string_at("format");
    const std::optional<DType> dtype = parse_dtype(format);
    if (!dtype) o.fail_below("/format", "unknown number format \"" + format + "\"");
    t.call.format = *dtype;
  }
  t.median_s = o.positive_at("median_s");
  t.p10_s = o.positive_at("p10_s");
  t.p90_s = o.positive_at("p90_s");
  t.samples = o.non_negative_int_at("samples");
  return t;
}

}  // namespace

Calibration calibration_from_json(const json& j, std::string_view where) {
  const JsonField o(j, where);
  o.expect_object();
  const std::string expected_format = "\"" + std::string(kCalibrationFormat) + "\"";
  if (!o.has("format")) {
    o.fail_below("/format", "missing (expected " + expected_format +
                                "; a file from before calibration files were versioned: run memfront calibrate again)");
  }
  if (const std::string format = o.string_at("format"); format != kCalibrationFormat) {
    o.fail_below("/format", "expected " + expected_format + ", got \"" + format +
                                "\" (a calibration of another memfront: run memfront calibrate again)");
  }
  o.only_keys({"format", "measured", "host", "created", "load_before", "load_after", "run_delay_share", "loaded",
               "gemm_flops_per_s", "attention_flops_per_s", "memory_bytes_per_s", "link_latency_s",
               "link_bytes_per_s", "ops"});
  Calibration c;
  c.measured = o.bool_at("measured");
  c.host = o.string_at("host");
  c.created = o.string_at("created");
  c.load_before = o.non_negative_at("load_before");
  c.load_after = o.non_negative_at("load_after");
  c.run_delay_share = o.non_negative_at("run_delay_share");
  c.loaded = o.bool_at("loaded");
  c.gemm_flops_per_s = o.positive_at("gemm_flops_per_s");
  c.attention_flops_per_s = o.positive_at("attention_flops_per_s");
  c.memory_bytes_per_s = o.positive_at("memory_bytes_per_s");
  c.link_latency_s = o.non_negative_at("link_latency_s");
  c.link_bytes_per_s = o.positive_at("link_bytes_per_s");
  const JsonField ops = o.array_at("ops");
  for (size_t i = 0; i < ops.value().size(); ++i) c.ops.push_back(op_timing_from_json(ops.element(i)));
  return c;
}

void save_calibration(const std::filesystem::path& path, const Calibration& calibration) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  replace_file_atomically(path, to_json(calibration).dump(2) + "\n");
}

}  // namespace memfront
