#include "tuner/export.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <utf8.h>

#include "core/arena.h"
#include "core/config.h"
#include "core/error.h"
#include "tuner/launcher.h"
#include "tuner/slurm.h"

// How each target receives a trial (the mapping, knob by knob, is in the
// functions below; every knob it cannot express is named in the export):
//
//   memfront   the normalized config, exactly what memfront-trial --config
//              accepts. Its parser rejects unknown keys, so it carries no
//              provenance of its own: its provenance is the trial record,
//              found by the config's id (config_id of this file == record id).
//   deepspeed  a DeepSpeed config. DeepSpeed reads top-level keys by name and
//              ignores the others (its sections, e.g. zero_optimization, are
//              pydantic models that reject unknown keys), so provenance and
//              notes travel in a top-level "memfront" object.
//   fsdp2      a Python module with apply_memfront_config(model, blocks_name)
//              (fully_shard / DistributedDataParallel, activation checkpointing
//              that keeps the state dict's keys), make_optimizer(model) and
//              train_step(...) (one gradient reduction per optimizer step);
//              the device is the trial's backend's; provenance and notes are
//              comments.
//   sbatch     a bash script that reruns the trial with memfront-trial under
//              srun, with the Slurm launcher's srun options; provenance and
//              notes are comments.

namespace memfront {

static_assert([] {
  for (size_t i = 0; i < kExportFormats.size(); ++i) {
    if (static_cast<size_t>(kExportFormats[i].format) != i) return false;
  }
  return true;
}(), "kExportFormats must list the formats in enum order: export_format_name() indexes it");

std::optional<ExportFormat> parse_export_format(std::string_view name) {
  for (const ExportFormatName& entry : kExportFormats) {
    if (entry.name == name) return entry.format;
  }
  // The name fsdp2 had before it named the API (FSDP2) it writes for.
  if (name == "fsdp") return ExportFormat::fsdp2;
  return std::nullopt;
}

std::string export_format_list() {
  std::string list;
  for (size_t i = 0; i < kExportFormats.size(); ++i) {
    if (i > 0) list += i + 1 == kExportFormats.size() ? " or " : ", ";
    list += kExportFormats[i].name;
  }
  return list;
}

ExportFormat export_format_named(std::string_view name, std::string_view where) {
  if (std::optional<ExportFormat> format = parse_export_format(name)) return *format;
  throw InputError(std::string(where) + ": unknown export format '" + std::string(name) + "' (expected " +
                   export_format_list() + ")");
}

namespace {

using ojson = nlohmann::ordered_json;

// ---------------------------------------------------------------------------
// Text

// A number as JSON writes it (shortest text that reads back the same, and
// independent of the C locale, which a Qt caller sets from the environment).
// Python reads the same text.
std::string num(double x) { return ojson(x).dump(); }

// A value from the record made safe for one comment line: ill-formed UTF-8
// (stray bytes, overlong forms, surrogates, code points past U+10FFFF) becomes
// '?', since Python rejects source that is not UTF-8; then control characters
// (newlines above all, which would end the comment and start code) become
// spaces. utfcpp knows UTF-8's rules; a hand-written check missed some.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  utf8::replace_invalid(text.begin(), text.end(), std::back_inserter(out), U'?');
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = ' ';
  }
  return out;
}

// ---------------------------------------------------------------------------
// What every export knows about the trial

struct Trial {
  const TrialRecord& record;
  const ExportSource& source;
  const Config& config;  // the record's
  std::string id;  // config_id(config): 16 hex digits, safe in file and job names
  int nodes = 1;
};

Trial read_trial(const TrialRecord& record, const ExportSource& source) {
  Trial t{record, source, record.config, "", 1};
  t.id = config_id(t.config);
  t.nodes = t.config.world / t.config.placement.ranks_per_node;
  return t;
}

ojson provenance(const Trial& t) {
  const MachineInfo& machine = t.source.header.machine;
  ojson p;
  p["results_file"] = t.source.results_file.string();
  p["study"] = t.source.header.study;
  p["trial"] = t.record.id;
  if (t.record.id != t.id) p["config_id"] = t.id;
  p["status"] = std::string(to_string(t.record.status));
  if (!t.record.error.empty()) p["error"] = t.record.error;
  p["machine"] = {{"host", machine.host}, {"cpu", machine.cpu}, {"gpu", machine.gpu.empty() ? "none" : machine.gpu}};
  p["memfront_version"] = t.source.header.memfront_version;
  if (t.record.metrics) {
    const TrialMetrics& m = *t.record.metrics;
    ojson measured;
    measured["peak_memory_bytes"] = m.peak_total_max;
    measured["peak_memory"] = format_bytes(m.peak_total_max);
    measured["step_time_median_s"] = m.step_time_s.median;
    measured["tokens_per_s"] = m.tokens_per_s;
    measured["final_loss"] = m.final_loss;
    if (m.loss_delta) measured["loss_delta"] = *m.loss_delta;
    p["measured"] = std::move(measured);
  }
  return p;
}

// Provenance as "#   key: value" lines, nested objects as dotted keys.
void comment_provenance(std::string& out, const ojson& object, const std::string& prefix = "") {
  for (const auto& [key, value] : object.items()) {
    if (value.is_object()) {
      comment_provenance(out, value, prefix + key + ".");
    } else {
      const std::string text = one_line(value.is_string() ? value.get<std::string>() : value.dump());
      out += "#   " + prefix + key + ":" + (text.empty() ? "" : " " + text) + "\n";
    }
  }
}

// What the reader of an export must know: caveats of what was mapped, and the
// knobs the target has no equivalent for, each as "knob=value: why".
struct Notes {
  std::vector<std::string> notes;
  std::vector<std::string> not_mapped;
};

void comment_list(std::string& out, const std::string& title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  out += "#\n# " + title + "\n";
  for (const auto& item : items) out += "#   - " + one_line(item) + "\n";
}

// Caveats about the measurement itself, for every format.
void add_measurement_notes(const Trial& t, Notes& n) {
  if (t.record.status != TrialStatus::ok) {
    n.notes.push_back("status=" + std::string(to_string(t.record.status)) +
                      ": memfront did not complete this trial; its measured figures are partial or absent");
  }
  if (t.record.id != t.id) {
    n.notes.push_back("the record's id " + t.record.id + " is not its config's id " + t.id +
                      " (recorded by another memfront version?); names here use " + t.id);
  }
}

// Caveats shared by the formats that run the user's own model (deepspeed, fsdp).
void add_target_notes(const Trial& t, std::string_view target, Notes& n) {
  const Config& c = t.config;
  const ModelShape& m = c.model;
  if (c.backend == Backend::cpu) {
    n.notes.push_back("backend=cpu: measured on memfront's CPU backend; on GPUs the step time and the memory "
                      "beside the model state (CUDA context, allocator caching, kernel workspaces) differ");
  }
  n.notes.push_back("model (V=" + std::to_string(m.vocab) + " T=" + std::to_string(m.seq) + " C=" +
                    std::to_string(m.width) + " H=" + std::to_string(m.heads) + " L=" + std::to_string(m.layers) +
                    "), data.* and train.steps/warmup/seed/threads/eval_sequences describe memfront's benchmark "
                    "workload; " + std::string(target) +
                    " trains your model on your data, so the measured figures hold for a model of this shape");

  if (c.precision.activations != DType::fp32) {
    n.not_mapped.push_back("precision.activations=" + std::string(to_string(c.precision.activations)) + ": " +
                           std::string(target) +
                           " keeps saved activations in the compute dtype; it has no setting for their storage format");
  }
  if (c.topk.attention > 0) {
    n.not_mapped.push_back("topk.attention=" + std::to_string(c.topk.attention) + ": " + std::string(target) +
                           " has no per-query Top-K attention; it is a change to the model's attention code");
  }
  if (c.topk.grad < 1.0) {
    n.not_mapped.push_back("topk.grad=" + num(c.topk.grad) + " (topk.error_feedback=" +
                           (c.topk.error_feedback ? "true" : "false") + "): " + std::string(target) +
                           " has no Top-K gradient sparsification; gradients are reduced densely");
  }
  if (t.nodes > 1) {
    const Config::Placement& p = c.placement;
    n.not_mapped.push_back("placement.ranks_per_node=" + std::to_string(p.ranks_per_node) + ", placement.order=" +
                           (p.order == PlacementOrder::explicit_list ? std::string("explicit list")
                                                                     : std::string(to_string(p.order))) +
                           ", placement.collectives=" + std::string(to_string(p.collectives)) + ": " +
                           std::string(target) +
                           " takes rank placement from its launcher (the #SBATCH lines of the sbatch export place ranks as measured) "
                           "and NCCL picks its own collective algorithms");
    n.not_mapped.push_back("placement.link_latency_us=" + num(p.link_latency_us) + ", placement.link_bandwidth_gigabytes_per_s=" +
                           num(p.link_bandwidth_gbps) +
                           ": memfront's emulated inter-node link; the real network takes its place");
  }
}

// "quant.block=256, quant.error_feedback=true": the compression settings that
// go with a quantized format, for the targets that have no such settings.
std::string quant_details(const Config& c, bool grads) {
  std::string details;
  const DType format = grads ? c.quant.grad : c.quant.weights;
  if (dtype_is_scaled(format)) details = "quant.block=" + std::to_string(c.quant.block);
  if (grads && c.quant.error_feedback) {
    details += std::string(details.empty() ? "" : ", ") + "quant.error_feedback=true";
  }
  return details;
}

// ---------------------------------------------------------------------------
// memfront

std::string export_memfront(const Trial& t) { return to_json(t.config).dump(2) + "\n"; }

// ---------------------------------------------------------------------------
// DeepSpeed

std::string export_deepspeed(const Trial& t) {
  const Config& c = t.config;
  Notes n;
  add_measurement_notes(t, n);
  add_target_notes(t, "DeepSpeed", n);
  const bool bf16 = c.precision.compute == DType::bf16;

  ojson ds;
  // DeepSpeed checks train_batch_size against the world size it is launched with.
  ds["train_batch_size"] = static_cast<uint64_t>(c.batch.micro) * static_cast<uint64_t>(c.batch.accum) *
                           static_cast<uint64_t>(c.world);
  ds["train_micro_batch_size_per_gpu"] = c.batch.micro;
  ds["gradient_accumulation_steps"] = c.batch.accum;
  ds["gradient_clipping"] = 0.0;  // memfront does not clip
  ds["optimizer"] = {{"type", "AdamW"},
                     {"params",
                      {{"lr", c.train.lr},
                       {"betas", {c.train.beta1, c.train.beta2}},
                       {"eps", c.train.eps},
                       {"weight_decay", c.train.weight_decay}}}};
  ds["bf16"] = {{"enabled", bf16}};

  int stage = 0;
  switch (c.shard.strategy) {
    case ShardStrategy::ddp: stage = 0; break;
    case ShardStrategy::zero1: stage = 1; break;
    case ShardStrategy::zero2: stage = 2; break;
    case ShardStrategy::zero3:
    case ShardStrategy::hybrid: stage = 3; break;
  }
  ojson zero;
  zero["stage"] = stage;
  if (stage > 0) {
    // Measured memory has no overlap buffers: memfront's collectives are synchronous.
    zero["overlap_comm"] = false;
    n.notes.push_back("zero_optimization.overlap_comm=false" +
                      std::string(stage == 3 ? ", stage3_prefetch_bucket_size=0, stage3_param_persistence_threshold=0" : "") +
                      ": memfront's collectives are synchronous" +
                      (stage == 3 ? ", gather a parameter unit only when it is needed and shard every parameter" : "") +
                      "; these keep DeepSpeed's memory close to the measured one (overlap and prefetch are faster "
                      "and use more)");
    n.notes.push_back("reduce_bucket_size and allgather_bucket_size keep DeepSpeed's defaults: memfront reduces one "
                      "parameter unit (the embeddings, a block, the final LayerNorm) at a time, so buckets of about "
                      "one block's parameters come closest to its memory");
  }
  if (stage == 3) {
    zero["stage3_prefetch_bucket_size"] = 0;
    zero["stage3_param_persistence_threshold"] = 0;
  }
  if (c.shard.strategy == ShardStrategy::hybrid) {
    zero["zero_hpz_partition_size"] = c.shard.group;
    n.notes.push_back("shard.strategy=hybrid, shard.group=" + std::to_string(c.shard.group) +
                      ": mapped to ZeRO-3 with ZeRO++ hpZ (zero_hpz_partition_size), which keeps a second copy of "
                      "the weights sharded within groups of " + std::to_string(c.shard.group) +
                      " ranks for backward, while gradients and optimizer state stay sharded over all ranks; memfront's "
                      "hybrid shards all of them within a group and replicates across groups. DeepSpeed's MiCS "
                      "(zero_optimization.mics_shard_size, with deepspeed.zero.MiCS_Init in the model code) does that");
  }

  // ZeRO++ quantizes weight gathers (qwZ) and, under stage 3 only, gradient
  // reductions (qgZ), each in its own block format.
  const bool qwz = c.quant.weights == DType::int8;
  const bool qgz = stage == 3 && dtype_is_scaled(c.quant.grad);
  if (qwz) {
    zero["zero_quantized_weights"] = true;
    n.notes.push_back("quant.weights=int8: mapped to ZeRO++ qwZ (zero_quantized_weights), block-wise int8 "
                      "all-gathers of the weights");
  } else if (c.quant.weights == DType::bf16 && !bf16) {
    n.not_mapped.push_back("quant.weights=bf16 with precision.compute=fp32: DeepSpeed gathers the weights in the "
                           "training dtype; gathering bf16 while computing in fp32 has no setting");
  }
  if (qgz) {
    zero["zero_quantized_gradients"] = true;
    n.notes.push_back("quant.grad=" + std::string(to_string(c.quant.grad)) +
                      ": mapped to ZeRO++ qgZ (zero_quantized_gradients), an all-to-all reduction in DeepSpeed's own "
                      "quantized format and bit width");
  } else if (dtype_is_scaled(c.quant.grad)) {
    n.not_mapped.push_back("quant.grad=" + std::string(to_string(c.quant.grad)) + " (" + quant_details(c, true) +
                           "): DeepSpeed quantizes gradients (ZeRO++ qgZ) only under ZeRO stage 3; stage " +
                           std::to_string(stage) + " reduces them in the training dtype");
  } else {
    ds["communication_data_type"] = std::string(to_string(c.quant.grad));
    if (c.quant.grad == DType::bf16 && c.quant.error_feedback) {
      n.not_mapped.push_back("quant.error_feedback=true: DeepSpeed keeps no residual of bf16 gradient rounding");
    }
  }
  if (qwz || qgz) {
    n.not_mapped.push_back(quant_details(c, qgz) + ": ZeRO++ has its own quantization blocks" +
                           (qgz && c.quant.error_feedback
                                ? " and keeps no gradient residual (zeropp_loco_param adds a different error "
                                  "compensation)"
                                : ""));
  }
  ds["zero_optimization"] = std::move(zero);

  if (c.checkpoint.every > 0) {
    const int k = c.checkpoint.every;
    const int segments = (c.model.layers + k - 1) / k;
    ds["activation_checkpointing"] = {{"partition_activations", false},
                                      {"number_checkpoints", segments},
                                      {"contiguous_memory_optimization", false},
                                      {"cpu_checkpointing", false}};
    n.notes.push_back("checkpoint.every=" + std::to_string(k) +
                      ": activation_checkpointing configures deepspeed.checkpointing, which acts where the model "
                      "calls deepspeed.checkpointing.checkpoint: call it once per segment of " + std::to_string(k) +
                      " consecutive blocks (" + std::to_string(segments) + " segments), as memfront keeps the input "
                      "of blocks 0, " + std::to_string(k) + ", " + std::to_string(2 * k) + ", ... and recomputes the rest");
  }

  ds["memfront"] = {{"provenance", provenance(t)}, {"notes", n.notes}, {"not_mapped", n.not_mapped}};
  // Strings from a record built in code need not be UTF-8; replace what is not.
  return ds.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n";
}

// ---------------------------------------------------------------------------
// PyTorch FSDP2

std::string export_fsdp2(const Trial& t) {
  const Config& c = t.config;
  Notes n;
  add_measurement_notes(t, n);
  add_target_notes(t, "PyTorch", n);
  const ShardStrategy strategy = c.shard.strategy;
  const bool ddp = strategy == ShardStrategy::ddp;
  const bool bf16 = c.precision.compute == DType::bf16;
  const int k = c.checkpoint.every;

  switch (strategy) {
    case ShardStrategy::ddp: break;
    case ShardStrategy::zero1:
      n.not_mapped.push_back("shard.strategy=zero1: FSDP2 cannot shard the optimizer state alone; this uses the zero2 "
                             "form (fully_shard with reshard_after_forward=False), which also shards gradients and, "
                             "between steps, parameters, so it needs less memory than was measured");
      break;
    case ShardStrategy::zero2:
      n.notes.push_back("shard.strategy=zero2: fully_shard with reshard_after_forward=False keeps the parameters "
                        "gathered from forward through backward like zero2, but shards them between steps");
      break;
    case ShardStrategy::zero3: break;
    case ShardStrategy::hybrid:
      n.notes.push_back("shard.strategy=hybrid: a 2-D mesh (HSDP) shards within groups of shard.group consecutive "
                        "ranks and replicates across groups, as memfront's groups are laid out");
      break;
  }
  if (ddp && bf16) {
    n.notes.push_back("precision.compute=bf16: DistributedDataParallel has no precision setting; train_step runs the "
                      "forward pass and loss under torch.autocast(DEVICE, dtype=torch.bfloat16)");
  }

  // FSDP2 reduces gradients in reduce_dtype; DDP in the gradients' dtype,
  // or in bfloat16 through its bf16 compression hook.
  std::string reduce_dtype = "torch.float32";
  bool bf16_hook = false;
  if (c.quant.grad == DType::bf16) {
    reduce_dtype = "torch.bfloat16";
    bf16_hook = ddp;
    if (c.quant.error_feedback) {
      n.not_mapped.push_back("quant.error_feedback=true: PyTorch keeps no residual of bf16 gradient rounding");
    }
  } else if (c.quant.grad != DType::fp32) {
    n.not_mapped.push_back("quant.grad=" + std::string(to_string(c.quant.grad)) + " (" + quant_details(c, true) +
                           "): PyTorch has no integer gradient compression; gradients are reduced in float32");
  }
  if (c.quant.weights == DType::int8) {
    n.not_mapped.push_back("quant.weights=int8 (" + quant_details(c, false) +
                           "): FSDP2 all-gathers the weights in param_dtype; it has no int8 all-gather");
  } else if (c.quant.weights == DType::bf16 && !bf16) {
    n.not_mapped.push_back("quant.weights=bf16 with precision.compute=fp32: FSDP2 all-gathers in param_dtype and "
                           "computes in it too; gathering bf16 while computing in fp32 has no setting");
  }

  // The device and process-group backend of the trial's own backend, so that
  // the export runs on the kind of machine it was measured on.
  const bool cuda = c.backend == Backend::cuda;
  const std::string device = cuda ? "cuda" : "cpu";
  const std::string other_device = cuda ? "cpu" : "cuda";
  const std::string process_group = cuda ? "nccl" : "gloo";

  std::string py = "# memfront export: PyTorch " + std::string(ddp ? "DistributedDataParallel" : "FSDP2") +
                   " setup for trial " + t.id + "\n";
  // Values from the record start on line 3 or later: a comment on line 1 or 2
  // could otherwise be read as a Python source-encoding declaration.
  py += "#\n# Provenance\n";
  comment_provenance(py, provenance(t));
  comment_list(py, "Notes", n.notes);
  comment_list(py, "Not mapped (no PyTorch equivalent: this run differs from the measured one there)", n.not_mapped);
  py += "#\n"
        "# Use: after torch.distributed.init_process_group(\"" + process_group + "\"), with the model on DEVICE,\n"
        "#     model = apply_memfront_config(model, \"layers\")\n"
        "#     optimizer = make_optimizer(model)\n"
        "#     for micro_batches in data:  # GRADIENT_ACCUMULATION_STEPS micro-batches per step\n"
        "#         train_step(model, optimizer, micro_batches, loss_fn)\n"
        "# where \"layers\" names the ModuleList of transformer blocks (e.g. \"transformer.h\"),\n"
        "# which the model's forward runs one after another (for block in self.layers:\n"
        "# x = block(x)), and loss_fn(model, micro_batch) returns a micro-batch's loss.\n"
        "# Launch WORLD_SIZE ranks (torchrun, or srun under the #SBATCH lines of the sbatch export).\n";
  if (ddp) py += "import contextlib\n";
  if (k > 0) py += "import functools\n";
  if (ddp || k > 0) py += "\n";
  py += "import torch\n";
  if (bf16_hook) py += "from torch.distributed.algorithms.ddp_comm_hooks import default_hooks\n";
  if (ddp) {
    py += "from torch.nn.parallel import DistributedDataParallel\n";
  } else {
    py += "from torch.distributed.device_mesh import init_device_mesh\n"
          "from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard\n";
  }
  if (k > 0) py += "from torch.utils.checkpoint import checkpoint\n";
  py += "\n"
        "# backend=" + std::string(to_string(c.backend)) + ": the trial ran on " + device +
        " (process group \"" + process_group + "\"); set \"" + other_device + "\" to run elsewhere.\n"
        "DEVICE = \"" + device + "\"\n"
        "WORLD_SIZE = " + std::to_string(c.world) + "\n"
        "MICRO_BATCH_PER_RANK = " + std::to_string(c.batch.micro) + "  # batch.micro: sequences per micro-batch\n"
        "GRADIENT_ACCUMULATION_STEPS = " + std::to_string(c.batch.accum) + "  # batch.accum: micro-batches per optimizer step\n";
  if (k > 0) py += "CHECKPOINT_EVERY = " + std::to_string(k) + "  # checkpoint.every\n";
  if (strategy == ShardStrategy::hybrid) py += "SHARD_GROUP = " + std::to_string(c.shard.group) + "  # shard.group\n";

  if (k > 0) {
    // Wrapping segments in new modules (Sequential, checkpoint_wrapper) would
    // rename the blocks' parameters ("layers.0.fc.weight" would become
    // "layers.0.0.fc.weight") and an existing checkpoint would no longer load.
    // The blocks stay where they are; only what iterating them yields changes.
    py += "\n\n"
          "class CheckpointedSegments(torch.nn.ModuleList):\n"
          "    \"\"\"The blocks under their own names, so that the state dict keeps its keys.\n"
          "\n"
          "    checkpoint.every=" + std::to_string(k) + ": iterating yields one callable per segment of CHECKPOINT_EVERY\n"
          "    consecutive blocks, which keeps only the segment's input; backward\n"
          "    recomputes the segment's forward (as memfront keeps the input of blocks\n"
          "    0, k, 2k, ...). Indexing still gives the blocks themselves.\n"
          "    \"\"\"\n"
          "\n"
          "    def __iter__(self):\n"
          "        blocks = list(self._modules.values())\n"
          "        for first in range(0, len(blocks), CHECKPOINT_EVERY):\n"
          "            yield functools.partial(_run_checkpointed, blocks[first:first + CHECKPOINT_EVERY])\n"
          "\n"
          "\n"
          "def _run_segment(segment, x):\n"
          "    for block in segment:\n"
          "        x = block(x)\n"
          "    return x\n"
          "\n"
          "\n"
          "def _run_checkpointed(segment, x):\n"
          "    return checkpoint(_run_segment, segment, x, use_reentrant=False)\n";
  }

  py += "\n\n"
        "def apply_memfront_config(model: torch.nn.Module, blocks_name: str) -> torch.nn.Module:\n"
        "    \"\"\"Applies trial " + t.id + "'s configuration to `model` and returns the model to train.\"\"\"\n";
  if (k > 0 || !ddp) {
    py += "    parent_name, _, leaf = blocks_name.rpartition(\".\")\n"
          "    parent = model.get_submodule(parent_name)\n"
          "    blocks = list(getattr(parent, leaf))\n";
  }
  if (k > 0) py += "    setattr(parent, leaf, CheckpointedSegments(blocks))\n";
  if (ddp) {
    if (k == 0) py += "    # blocks_name is not needed: ddp without checkpointing leaves the blocks as they are.\n";
    py += "    # shard.strategy=ddp: every rank holds the whole model, gradients and optimizer state;\n"
          "    # gradients are all-reduced.\n"
          "    model = DistributedDataParallel(model)\n";
    if (bf16_hook) {
      py += "    # quant.grad=bf16: gradients are all-reduced in bfloat16.\n"
            "    model.register_comm_hook(None, default_hooks.bf16_compress_hook)\n";
    }
  } else {
    if (strategy == ShardStrategy::hybrid) {
      py += "    # shard.strategy=hybrid: shard within groups of SHARD_GROUP consecutive ranks, replicate across groups.\n"
            "    mesh = init_device_mesh(DEVICE, (WORLD_SIZE // SHARD_GROUP, SHARD_GROUP), "
            "mesh_dim_names=(\"replicate\", \"shard\"))\n";
    } else {
      py += "    # shard.strategy=" + std::string(to_string(strategy)) + ": sharded over all WORLD_SIZE ranks.\n"
            "    mesh = init_device_mesh(DEVICE, (WORLD_SIZE,), mesh_dim_names=(\"shard\",))\n";
    }
    const std::string reshard = traits(strategy).shards_params ? "True" : "False";
    py += "    # param_dtype: precision.compute=" + std::string(to_string(c.precision.compute)) +
          "; reduce_dtype: quant.grad=" + std::string(to_string(c.quant.grad)) + "\n"
          "    mp_policy = MixedPrecisionPolicy(param_dtype=" + std::string(bf16 ? "torch.bfloat16" : "torch.float32") +
          ", reduce_dtype=" + reduce_dtype + ")\n"
          "    # One all-gather unit per block, as memfront gathers them; the root unit holds\n"
          "    # the rest (embeddings, final LayerNorm).\n"
          "    for block in blocks:\n"
          "        fully_shard(block, mesh=mesh, reshard_after_forward=" + reshard + ", mp_policy=mp_policy)\n"
          "    fully_shard(model, mesh=mesh, reshard_after_forward=" + reshard + ", mp_policy=mp_policy)\n";
  }
  py += "    return model\n"
        "\n\n"
        "def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:\n"
        "    \"\"\"AdamW as memfront trained; build it after apply_memfront_config.\"\"\"\n"
        "    return torch.optim.AdamW(model.parameters(), lr=" + num(c.train.lr) + ", betas=(" + num(c.train.beta1) +
        ", " + num(c.train.beta2) + "), eps=" + num(c.train.eps) + ", weight_decay=" + num(c.train.weight_decay) + ")\n";

  // memfront reduces gradients once per optimizer step, after the last
  // micro-batch; DDP and FSDP2 would reduce after every backward.
  py += "\n\n"
        "def train_step(model, optimizer, micro_batches, loss_fn) -> float:\n"
        "    \"\"\"One optimizer step over the micro-batches (GRADIENT_ACCUMULATION_STEPS of them),\n"
        "    reducing the gradients once, after the last one, as memfront's step does.\n"
        "    Returns the step's loss, the mean over its micro-batches.\"\"\"\n"
        "    total = 0.0\n"
        "    for index, micro_batch in enumerate(micro_batches):\n"
        "        last = index == len(micro_batches) - 1\n";
  // The micro-batch's loss, its backward: under autocast for ddp with bf16 compute.
  std::string backward = "loss = loss_fn(model, micro_batch) / len(micro_batches)\n";
  if (ddp && bf16) {
    backward = "# precision.compute=bf16: DistributedDataParallel has no precision setting of its own.\n"
               "with torch.autocast(DEVICE, dtype=torch.bfloat16):\n"
               "    " + backward;
  }
  backward += "loss.backward()\n";
  std::string indent = "        ";
  if (ddp) {
    py += "        with contextlib.nullcontext() if last else model.no_sync():\n";
    indent += "    ";
  } else {
    py += "        model.set_requires_gradient_sync(last)\n";
  }
  // Each line of the backward, indented into the loop (and into no_sync's with).
  for (size_t begin = 0; begin < backward.size();) {
    const size_t end = backward.find('\n', begin) + 1;
    py += indent + backward.substr(begin, end - begin);
    begin = end;
  }
  py += "        total += loss.item()\n"
        "    optimizer.step()\n"
        "    optimizer.zero_grad()\n"
        "    return total\n";
  return py;
}

// ---------------------------------------------------------------------------
// Slurm

std::string export_sbatch(const Trial& t) {
  const Config& c = t.config;
  const Config::Placement& p = c.placement;
  Notes n;
  add_measurement_notes(t, n);
  if (t.nodes > 1) {
    n.notes.push_back("placement.link_latency_us=" + num(p.link_latency_us) + ", placement.link_bandwidth_gigabytes_per_s=" +
                      num(p.link_bandwidth_gbps) +
                      ": memfront emulates the inter-node link only on one host; across real nodes the real "
                      "network carries it");
  }
  const std::string name = "memfront-" + t.id;

  std::string sh = "#!/bin/bash\n";
  // The allocation and srun's options are the sweep's Slurm launcher's
  // (tuner/slurm.h), so that the export starts its ranks the way measured
  // trials started under Slurm (srun --mpi=pmix above all).
  const ArrayShape shape = shape_of(c, SlurmOptions{});
  sh += "#SBATCH --job-name=" + name + "\n";
  sh += "#SBATCH --nodes=" + std::to_string(shape.nodes) + "\n";
  sh += "#SBATCH --ntasks-per-node=" + std::to_string(shape.tasks_per_node) + "\n";
  if (shape.distribution != "arbitrary") sh += "#SBATCH --distribution=" + shape.distribution + "\n";
  if (shape.gpus_per_node > 0) sh += "#SBATCH --gpus-per-node=" + std::to_string(shape.gpus_per_node) + "\n";
  sh += "#SBATCH --cpus-per-task=" + std::to_string(shape.cpus_per_task) + "\n";
  sh += "#SBATCH --output=" + name + "-%j.out\n";
  sh += "#\n"
        "# memfront export: Slurm batch script for trial " + t.id + ".\n"
        "# It reruns the trial with memfront-trial on the allocated nodes; set\n"
        "# MEMFRONT_TRIAL to the memfront-trial executable if it is not on PATH.\n"
        "#\n# Provenance\n";
  comment_provenance(sh, provenance(t));
  comment_list(sh, "Notes", n.notes);
  sh += "#\n";
  if (t.record.metrics && t.record.metrics->step_time_s.median > 0) {
    const int steps = c.train.warmup + c.train.steps;
    const auto total_s = static_cast<long long>(std::ceil(t.record.metrics->step_time_s.median * steps));
    sh += "# --time is not set: the measured median step of " + num(t.record.metrics->step_time_s.median) +
          " s over " + std::to_string(steps) + " steps\n"
          "# (train.warmup + train.steps) is about " + std::to_string(total_s) +
          " s of training plus start-up and evaluation;\n"
          "# add --time as your site requires.\n";
  } else {
    sh += "# --time is not set (nothing was measured); add it as your site requires.\n";
  }
  sh += "set -euo pipefail\n"
        "\n"
        "config=" + shell_quote(name + ".json") + "\n"
        "record=" + shell_quote(name + ".record.json") + "\n"
        "\n"
        "# The trial's normalized config. The quoted delimiter keeps the shell from\n"
        "# expanding anything in it, and no line of the pretty-printed JSON can equal it.\n"
        "cat > \"$config\" <<'MEMFRONT_CONFIG'\n" +
        export_memfront(t) +
        "MEMFRONT_CONFIG\n"
        "\n";
  if (p.order == PlacementOrder::explicit_list) {
    std::string node_list;
    for (int node : p.node_of_rank) {
      if (!node_list.empty()) node_list += ' ';  // appended, not concatenated: g++ 12 misreports that (-Wrestrict)
      node_list += std::to_string(node);
    }
    sh += "# placement.order is an explicit rank->node list: rank r runs on the allocation's\n"
          "# node number node_of_rank[r], through an arbitrary-distribution host file.\n"
          "mapfile -t nodes < <(scontrol show hostnames \"$SLURM_JOB_NODELIST\")\n"
          "hostfile=" + shell_quote(name + ".hosts") + "\n"
          "for node in " + node_list + "; do printf '%s\\n' \"${nodes[$node]}\"; done > \"$hostfile\"\n"
          "export SLURM_HOSTFILE=\"$hostfile\"\n";
  }
  std::vector<std::string> srun = {"srun"};
  std::ranges::copy(srun_options(shape, {}), std::back_inserter(srun));
  sh += shell_command(srun) + " \"${MEMFRONT_TRIAL:-memfront-trial}\" --config \"$config\" --out \"$record\"\n";
  return sh;
}

}  // namespace

std::string export_trial(const TrialRecord& record, ExportFormat format, const ExportSource& source) {
  const Trial trial = read_trial(record, source);
  switch (format) {
    case ExportFormat::memfront: return export_memfront(trial);
    case ExportFormat::deepspeed: return export_deepspeed(trial);
    case ExportFormat::fsdp2: return export_fsdp2(trial);
    case ExportFormat::sbatch: return export_sbatch(trial);
  }
  return {};
}

}  // namespace memfront
