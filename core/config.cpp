#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"

namespace memfront {

using nlohmann::json;

static_assert([] {
  for (size_t i = 0; i < kShardStrategies.size(); ++i) {
    if (static_cast<size_t>(kShardStrategies[i].strategy) != i) return false;
  }
  return true;
}(), "kShardStrategies must list the strategies in enum order: traits() indexes it");

std::string_view to_string(ShardStrategy v) { return traits(v).name; }
std::string_view to_string(PlacementOrder v) {
  switch (v) {
    case PlacementOrder::block: return "block";
    case PlacementOrder::cyclic: return "cyclic";
    case PlacementOrder::explicit_list: return "explicit";
  }
  return "?";
}
std::string_view to_string(CollectiveAlgo v) {
  return v == CollectiveAlgo::flat ? "flat" : "hierarchical";
}
std::string_view to_string(Backend v) { return v == Backend::cpu ? "cpu" : "cuda"; }
std::string_view to_string(DataSource v) { return v == DataSource::synthetic ? "synthetic" : "file"; }

std::string ConfigViolation::message() const { return pointed_message(source, pointer, expected); }

std::string ConfigViolation::pointer_under(std::string_view parent) const {
  return std::string(parent) + (pointer == "/" ? "" : pointer);
}

namespace {

// What parse_config throws: an InputError with the one-line message, carrying
// the violation for check_config to hand back as data.
class ConfigViolationError : public InputError {
 public:
  explicit ConfigViolationError(ConfigViolation violation)
      : InputError(violation.message()), violation_(std::move(violation)) {}
  const ConfigViolation& violation() const { return violation_; }

 private:
  ConfigViolation violation_;
};

std::string type_name(const json& value) {
  if (value.is_number_integer() || value.is_number_unsigned()) return "integer";
  if (value.is_number_float()) return "number";
  return value.type_name();
}

// Reads one JSON object field by field, remembering the JSON pointer for errors
// and which keys were consumed, so that unknown keys (typos) are reported.
class ObjectReader {
 public:
  ObjectReader(const json* object, std::string pointer, std::string_view source)
      : object_(object), pointer_(std::move(pointer)), source_(source) {
    if (object_ && !object_->is_object()) fail(pointer_, "expected an object, got " + type_name(*object_));
    known_.reserve(16);  // more than any group of the config has
  }

  [[noreturn]] void fail(const std::string& pointer, const std::string& what) const {
    throw ConfigViolationError({std::string(source_), pointer.empty() ? "/" : pointer, what});
  }
  std::string at(std::string_view key) const { return pointer_ + "/" + std::string(key); }

  const json* find(std::string_view key) {
    const bool first_ask = std::ranges::find(known_, key) == known_.end();
    if (first_ask) known_.push_back(key);
    if (!object_) return nullptr;
    const auto it = object_->find(key);
    if (it == object_->end()) return nullptr;
    if (first_ask) ++present_;
    return &*it;
  }

  // Whether the object has `key`, without making it a known key: for a
  // renamed key, which must not be listed among the expected ones.
  bool has(std::string_view key) const { return object_ && object_->contains(key); }

  ObjectReader object(std::string_view key) { return ObjectReader(find(key), at(key), source_); }

  int64_t integer(std::string_view key, int64_t fallback, int64_t lo, int64_t hi) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) fail(at(key), "expected an integer, got " + type_name(*v) + " " + v->dump());
    // An unsigned value past int64_t would wrap around: it is out of range as written.
    const bool past_int64 = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{INT64_MAX};
    const int64_t x = past_int64 ? INT64_MAX : v->get<int64_t>();
    if (past_int64 || x < lo || x > hi) {
      fail(at(key), "must be " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v->dump());
    }
    return x;
  }

  double number(std::string_view key, double fallback) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) fail(at(key), "expected a number, got " + type_name(*v) + " " + v->dump());
    return v->get<double>();
  }

  bool boolean(std::string_view key, bool fallback) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(at(key), "expected true or false, got " + type_name(*v) + " " + v->dump());
    return v->get<bool>();
  }

  std::string string(std::string_view key, std::string fallback) {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) fail(at(key), "expected a string, got " + type_name(*v) + " " + v->dump());
    return v->get<std::string>();
  }

  // A string that must be one of `choices`.
  template <class Enum, size_t N>
  Enum choice(std::string_view key, Enum fallback, const std::array<Enum, N>& choices) {
    const json* v = find(key);
    if (!v) return fallback;
    if (v->is_string()) {
      for (Enum c : choices) {
        if (to_string(c) == v->get_ref<const std::string&>()) return c;
      }
    }
    std::string names;
    for (Enum c : choices) names += (names.empty() ? "" : ", ") + std::string(to_string(c));
    if (!v->is_string()) fail(at(key), "expected one of " + names + ", got " + type_name(*v) + " " + v->dump());
    fail(at(key), "expected one of " + names + ", got \"" + v->get<std::string>() + "\"");
  }

  // Reports the first key that no reader asked for.
  void reject_unknown_keys() const {
    // Every member was asked for (the common case): no key to look for.
    if (!object_ || present_ == object_->size()) return;
    for (const auto& [key, value] : object_->items()) {
      if (std::ranges::find(known_, key) == known_.end()) {
        std::vector<std::string_view> sorted = known_;
        std::ranges::sort(sorted);
        std::string expected;
        for (std::string_view k : sorted) {
          if (!expected.empty()) expected += ", ";
          expected += k;
        }
        fail(at(key), "unknown key (expected one of: " + expected + ")");
      }
    }
  }

 private:
  const json* object_;
  std::string pointer_;
  std::string_view source_;
  // The keys asked for (string literals): a config is parsed for every record
  // a results file holds, so this stays a short list rather than a set.
  std::vector<std::string_view> known_;
  size_t present_ = 0;  // how many of known_ the object has
};

constexpr std::array kActivationFormats = {DType::fp32, DType::bf16, DType::fp8e4m3, DType::int8};
constexpr std::array kComputeFormats = {DType::fp32, DType::bf16};
constexpr std::array kGradFormats = {DType::fp32, DType::bf16, DType::int8, DType::int4};
constexpr std::array kWeightFormats = {DType::fp32, DType::bf16, DType::int8};
constexpr std::array kStrategies = [] {
  std::array<ShardStrategy, kShardStrategies.size()> strategies{};
  for (size_t i = 0; i < strategies.size(); ++i) strategies[i] = kShardStrategies[i].strategy;
  return strategies;
}();
constexpr std::array kCollectives = {CollectiveAlgo::flat, CollectiveAlgo::hierarchical};
constexpr std::array kBackends = {Backend::cpu, Backend::cuda};
constexpr std::array kDataSources = {DataSource::synthetic, DataSource::file};

constexpr int64_t kIntMax = 1 << 30;

// "ddp or zero1": the strategies that have (or lack) one of the traits, for messages.
std::string strategies_where(bool StrategyTraits::*trait, bool value, std::string_view conjunction) {
  std::vector<std::string_view> names;
  for (const StrategyTraits& t : kShardStrategies) {
    if (t.*trait == value) names.push_back(t.name);
  }
  // Appended piece by piece: g++ 12 misreports `" " + std::string(...)` (-Wrestrict).
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i + 1 == names.size() && i > 0) {
      text += ' ';
      text += conjunction;
      text += ' ';
    } else if (i > 0) {
      text += ", ";
    }
    text += names[i];
  }
  return text;
}

// Knobs are checked one by one while parsing; what follows checks how they
// combine. Each message names every knob involved.
void validate_combinations(const Config& c, const ObjectReader& root) {
  const int W = c.world;
  if (c.shard.strategy == ShardStrategy::hybrid) {
    if (W % c.shard.group != 0) {
      root.fail("/shard/group", "must divide world=" + std::to_string(W) + " for shard.strategy=hybrid, got " +
                                    std::to_string(c.shard.group));
    }
  }
  if (W % c.placement.ranks_per_node != 0) {
    root.fail("/placement/ranks_per_node",
              "must divide world=" + std::to_string(W) + ", got " + std::to_string(c.placement.ranks_per_node));
  }
  if (c.placement.order == PlacementOrder::explicit_list) {
    const auto& nodes = c.placement.node_of_rank;
    if (static_cast<int>(nodes.size()) != W) {
      root.fail("/placement/order", "explicit rank->node list must have world=" + std::to_string(W) +
                                        " entries, got " + std::to_string(nodes.size()));
    }
    const int node_count = W / c.placement.ranks_per_node;
    std::vector<int> ranks_on(node_count, 0);
    for (size_t r = 0; r < nodes.size(); ++r) {
      if (nodes[r] < 0 || nodes[r] >= node_count) {
        root.fail("/placement/order/" + std::to_string(r),
                  "node index must be 0.." + std::to_string(node_count - 1) + " (world/ranks_per_node), got " +
                      std::to_string(nodes[r]));
      }
      ++ranks_on[nodes[r]];
    }
    for (int n = 0; n < node_count; ++n) {
      if (ranks_on[n] != c.placement.ranks_per_node) {
        root.fail("/placement/order", "node " + std::to_string(n) + " holds " + std::to_string(ranks_on[n]) +
                                          " ranks, placement.ranks_per_node=" +
                                          std::to_string(c.placement.ranks_per_node) + " expected");
      }
    }
  }
  if (c.topk.grad < 1.0 && traits(c.shard.strategy).shards_grads) {
    root.fail("/topk/grad", "topk.grad < 1 needs whole gradients (shard.strategy " +
                                strategies_where(&StrategyTraits::shards_grads, false, "or") +
                                "), got shard.strategy=" + std::string(to_string(c.shard.strategy)));
  }
  if (c.topk.grad < 1.0 && c.quant.grad != DType::fp32) {
    root.fail("/topk/grad", "topk.grad < 1 sends fp32 values; it cannot be combined with quant.grad=" +
                                std::string(to_string(c.quant.grad)));
  }
  if (c.quant.weights != DType::fp32 && !traits(c.shard.strategy).shards_params) {
    root.fail("/quant/weights", "only " + strategies_where(&StrategyTraits::shards_params, true, "and") +
                                    " gather weights; quant.weights=" +
                                    std::string(to_string(c.quant.weights)) + " needs one of them, got shard.strategy=" +
                                    std::string(to_string(c.shard.strategy)));
  }
  if (c.precision.compute == DType::bf16 && c.backend == Backend::cpu) {
    root.fail("/precision/compute", "bf16 GEMMs run on the GPU's tensor cores; backend=cpu computes in fp32");
  }
  if (c.data.source == DataSource::file && c.data.path.empty()) {
    root.fail("/data/path", "data.source=file needs a path to a flat uint16 token file");
  }
  if (c.data.source == DataSource::synthetic && !c.data.path.empty()) {
    root.fail("/data/path", "data.source=synthetic takes no path (set data.source to \"file\")");
  }
}

}  // namespace

Config parse_config(const json& j, std::string_view source) {
  Config c;
  ObjectReader root(&j, "", source);

  ObjectReader model = root.object("model");
  c.model.vocab = static_cast<int>(model.integer("vocab", c.model.vocab, 2, 65536));
  c.model.seq = static_cast<int>(model.integer("seq", c.model.seq, 1, 65535));
  c.model.width = static_cast<int>(model.integer("width", c.model.width, 1, 1 << 16));
  c.model.heads = static_cast<int>(model.integer("heads", c.model.heads, 1, 1 << 12));
  c.model.layers = static_cast<int>(model.integer("layers", c.model.layers, 1, 1 << 12));
  if (c.model.width % c.model.heads != 0) {
    model.fail("/model/heads", "must divide model.width=" + std::to_string(c.model.width) + ", got " +
                                   std::to_string(c.model.heads));
  }
  model.reject_unknown_keys();

  ObjectReader batch = root.object("batch");
  c.batch.micro = static_cast<int>(batch.integer("micro", c.batch.micro, 1, kIntMax));
  c.batch.accum = static_cast<int>(batch.integer("accum", c.batch.accum, 1, kIntMax));
  batch.reject_unknown_keys();

  ObjectReader checkpoint = root.object("checkpoint");
  const int L = c.model.layers;
  if (const json* every = checkpoint.find("every"); every && every->is_number_integer()) {
    int64_t k = every->get<int64_t>();
    if (k < 0 || k > L) {
      checkpoint.fail("/checkpoint/every", "must be 0.." + std::to_string(L) + " (L=" + std::to_string(L) +
                                               "), got " + std::to_string(k));
    }
  }
  c.checkpoint.every = static_cast<int>(checkpoint.integer("every", c.checkpoint.every, 0, L));
  checkpoint.reject_unknown_keys();

  ObjectReader precision = root.object("precision");
  c.precision.activations = precision.choice("activations", c.precision.activations, kActivationFormats);
  c.precision.compute = precision.choice("compute", c.precision.compute, kComputeFormats);
  precision.reject_unknown_keys();

  ObjectReader quant = root.object("quant");
  c.quant.grad = quant.choice("grad", c.quant.grad, kGradFormats);
  c.quant.weights = quant.choice("weights", c.quant.weights, kWeightFormats);
  c.quant.block = static_cast<int>(quant.integer("block", c.quant.block, 2, kIntMax));
  c.quant.error_feedback = quant.boolean("error_feedback", c.quant.error_feedback);
  quant.reject_unknown_keys();

  ObjectReader topk = root.object("topk");
  c.topk.grad = topk.number("grad", c.topk.grad);
  if (!(c.topk.grad > 0.0 && c.topk.grad <= 1.0)) {
    topk.fail("/topk/grad", "must be a density in (0, 1], got " + json(c.topk.grad).dump());
  }
  c.topk.attention = static_cast<int>(topk.integer("attention", c.topk.attention, 0, c.model.seq));
  c.topk.error_feedback = topk.boolean("error_feedback", c.topk.error_feedback);
  topk.reject_unknown_keys();

  c.world = static_cast<int>(root.integer("world", c.world, 1, 1 << 20));

  ObjectReader shard = root.object("shard");
  c.shard.strategy = shard.choice("strategy", c.shard.strategy, kStrategies);
  c.shard.group = static_cast<int>(shard.integer("group", 0, 0, c.world));
  if (c.shard.strategy == ShardStrategy::hybrid && c.shard.group == 0) {
    shard.fail("/shard/group", "shard.strategy=hybrid needs a shard group size (a divisor of world=" +
                                   std::to_string(c.world) + ")");
  }
  if (c.shard.strategy != ShardStrategy::hybrid) c.shard.group = c.world;  // normalized: one group
  shard.reject_unknown_keys();

  ObjectReader placement = root.object("placement");
  c.placement.ranks_per_node = static_cast<int>(placement.integer("ranks_per_node", 0, 0, c.world));
  if (c.placement.ranks_per_node == 0) c.placement.ranks_per_node = c.world;
  if (const json* order = placement.find("order"); order && order->is_array()) {
    c.placement.order = PlacementOrder::explicit_list;
    for (size_t r = 0; r < order->size(); ++r) {
      const json& node = (*order)[r];
      // Checked before conversion: 4294967296 must not become node 0.
      const bool in_range = node.is_number_unsigned() ? node.get<uint64_t>() < uint64_t(c.world)
                                                       : node.is_number_integer() && node.get<int64_t>() >= 0 &&
                                                             node.get<int64_t>() < c.world;
      if (!in_range) {
        placement.fail("/placement/order/" + std::to_string(r),
                       "expected a node index 0.." + std::to_string(c.world - 1) + ", got " + node.dump());
      }
      c.placement.node_of_rank.push_back(node.get<int>());
    }
  } else if (order) {
    if (!order->is_string() || (*order != "block" && *order != "cyclic")) {
      placement.fail("/placement/order", "expected \"block\", \"cyclic\" or a rank->node list, got " + order->dump());
    }
    c.placement.order = *order == "block" ? PlacementOrder::block : PlacementOrder::cyclic;
  }
  c.placement.collectives = placement.choice("collectives", c.placement.collectives, kCollectives);
  c.placement.link_latency_us = placement.number("link_latency_us", c.placement.link_latency_us);
  // The bandwidth was once link_bandwidth_gbps, which reads as gigabits per
  // second; its value was and is in gigabytes per second.
  if (placement.has(kOldLinkBandwidthKey)) {
    placement.fail("/placement/" + std::string(kOldLinkBandwidthKey),
                   "renamed placement." + std::string(kLinkBandwidthKey) +
                       " (the same value: GB/s, 10^9 bytes per second)");
  }
  c.placement.link_bandwidth_gbps = placement.number(kLinkBandwidthKey, c.placement.link_bandwidth_gbps);
  // Bounded so that the emulated wait of a message stays a representable
  // duration: 1 s latency, 1 KB/s are already far past any real link.
  if (!(c.placement.link_latency_us >= 0 && c.placement.link_latency_us <= 1e6)) {
    placement.fail("/placement/link_latency_us",
                   "must be 0..1e6 (microseconds), got " + json(c.placement.link_latency_us).dump());
  }
  if (!(c.placement.link_bandwidth_gbps >= 1e-6 && c.placement.link_bandwidth_gbps <= 1e6)) {
    placement.fail("/placement/" + std::string(kLinkBandwidthKey),
                   "must be 1e-6..1e6 (GB/s), got " + json(c.placement.link_bandwidth_gbps).dump());
  }
  placement.reject_unknown_keys();

  c.backend = root.choice("backend", c.backend, kBackends);

  ObjectReader data = root.object("data");
  c.data.source = data.choice("source", c.data.source, kDataSources);
  c.data.path = data.string("path", "");
  c.data.seed = static_cast<uint64_t>(data.integer("seed", static_cast<int64_t>(c.data.seed), 0, INT64_MAX));
  c.data.noise = data.number("noise", c.data.noise);
  if (!(c.data.noise > 0.0 && c.data.noise <= 1.0)) {
    data.fail("/data/noise", "must be a probability in (0, 1], got " + json(c.data.noise).dump());
  }
  data.reject_unknown_keys();

  ObjectReader train = root.object("train");
  c.train.steps = static_cast<int>(train.integer("steps", c.train.steps, 1, kIntMax));
  c.train.warmup = static_cast<int>(train.integer("warmup", c.train.warmup, 0, kIntMax));
  c.train.lr = train.number("lr", c.train.lr);
  c.train.beta1 = train.number("beta1", c.train.beta1);
  c.train.beta2 = train.number("beta2", c.train.beta2);
  c.train.eps = train.number("eps", c.train.eps);
  c.train.weight_decay = train.number("weight_decay", c.train.weight_decay);
  c.train.seed = static_cast<uint64_t>(train.integer("seed", static_cast<int64_t>(c.train.seed), 0, INT64_MAX));
  c.train.threads = static_cast<int>(train.integer("threads", c.train.threads, 1, 1024));
  // Configs before eval_sequences gave eval_batches micro-batches of
  // batch.micro sequences: the same held-out sequences as eval_sequences =
  // their product, which is how an older record's config reads.
  const int64_t eval_batches = train.integer("eval_batches", 0, 1, kIntMax);
  const int64_t eval_sequences = train.integer("eval_sequences", 0, 1, kIntMax);
  if (eval_batches > 0 && eval_sequences > 0) {
    train.fail("/train/eval_batches", "the older spelling of eval_sequences (times batch.micro); give only eval_sequences");
  }
  c.train.eval_sequences = eval_sequences > 0 ? static_cast<int>(eval_sequences)
                           : eval_batches > 0 ? static_cast<int>(std::min<int64_t>(eval_batches * c.batch.micro, kIntMax))
                                              : c.train.eval_sequences;
  if (!(c.train.lr > 0)) train.fail("/train/lr", "must be > 0");
  if (!(c.train.beta1 >= 0 && c.train.beta1 < 1)) train.fail("/train/beta1", "must be in [0, 1)");
  if (!(c.train.beta2 >= 0 && c.train.beta2 < 1)) train.fail("/train/beta2", "must be in [0, 1)");
  if (!(c.train.eps > 0)) train.fail("/train/eps", "must be > 0");
  if (!(c.train.weight_decay >= 0)) train.fail("/train/weight_decay", "must be >= 0");
  train.reject_unknown_keys();

  root.reject_unknown_keys();
  validate_combinations(c, root);
  return c;
}

std::variant<Config, ConfigViolation> check_config(const json& j, std::string_view source) {
  try {
    return parse_config(j, source);
  } catch (const ConfigViolationError& e) {
    return e.violation();
  }
}

Config parse_config_text(std::string_view text, std::string_view source) {
  return parse_config(parse_json_text(text, source), source);
}

Config load_config(const std::filesystem::path& path) {
  return parse_config(read_json_file(path, "config file"), path.string());
}

namespace {

// Enums are knob values by the names that config files use.
template <class Enum>
KnobValue name_of(Enum value) {
  return std::string(to_string(value));
}

}  // namespace

const std::vector<ConfigKnob>& knob_table() {
  using I = int64_t;
  static const std::vector<ConfigKnob> table = {
      {"model.vocab", [](const Config& c) -> KnobValue { return I{c.model.vocab}; }},
      {"model.seq", [](const Config& c) -> KnobValue { return I{c.model.seq}; }},
      {"model.width", [](const Config& c) -> KnobValue { return I{c.model.width}; }},
      {"model.heads", [](const Config& c) -> KnobValue { return I{c.model.heads}; }},
      {"model.layers", [](const Config& c) -> KnobValue { return I{c.model.layers}; }},
      {"batch.micro", [](const Config& c) -> KnobValue { return I{c.batch.micro}; }},
      {"batch.accum", [](const Config& c) -> KnobValue { return I{c.batch.accum}; }},
      {"checkpoint.every", [](const Config& c) -> KnobValue { return I{c.checkpoint.every}; }},
      {"precision.activations", [](const Config& c) { return name_of(c.precision.activations); }},
      {"precision.compute", [](const Config& c) { return name_of(c.precision.compute); }},
      {"quant.grad", [](const Config& c) { return name_of(c.quant.grad); }},
      {"quant.weights", [](const Config& c) { return name_of(c.quant.weights); }},
      {"quant.block", [](const Config& c) -> KnobValue { return I{c.quant.block}; }},
      {"quant.error_feedback", [](const Config& c) -> KnobValue { return c.quant.error_feedback; }},
      {"topk.grad", [](const Config& c) -> KnobValue { return c.topk.grad; }},
      {"topk.attention", [](const Config& c) -> KnobValue { return I{c.topk.attention}; }},
      {"topk.error_feedback", [](const Config& c) -> KnobValue { return c.topk.error_feedback; }},
      {"shard.strategy", [](const Config& c) { return name_of(c.shard.strategy); }},
      {"shard.group", [](const Config& c) -> KnobValue { return I{c.shard.group}; }},
      {"placement.ranks_per_node", [](const Config& c) -> KnobValue { return I{c.placement.ranks_per_node}; }},
      {"placement.order",
       [](const Config& c) -> KnobValue {
         if (c.placement.order == PlacementOrder::explicit_list) return c.placement.node_of_rank;
         return name_of(c.placement.order);
       }},
      {"placement.collectives", [](const Config& c) { return name_of(c.placement.collectives); }},
      {"placement.link_latency_us", [](const Config& c) -> KnobValue { return c.placement.link_latency_us; }},
      {"placement.link_bandwidth_gigabytes_per_s",
       [](const Config& c) -> KnobValue { return c.placement.link_bandwidth_gbps; }},
      {"world", [](const Config& c) -> KnobValue { return I{c.world}; }},
      {"backend", [](const Config& c) { return name_of(c.backend); }},
      {"data.source", [](const Config& c) { return name_of(c.data.source); }},
      {"data.path", [](const Config& c) -> KnobValue { return c.data.path; }},
      // Seeds are parsed no larger than INT64_MAX, so they fit.
      {"data.seed", [](const Config& c) -> KnobValue { return static_cast<I>(c.data.seed); }},
      {"data.noise", [](const Config& c) -> KnobValue { return c.data.noise; }},
      {"train.steps", [](const Config& c) -> KnobValue { return I{c.train.steps}; }},
      {"train.warmup", [](const Config& c) -> KnobValue { return I{c.train.warmup}; }},
      {"train.lr", [](const Config& c) -> KnobValue { return c.train.lr; }},
      {"train.beta1", [](const Config& c) -> KnobValue { return c.train.beta1; }},
      {"train.beta2", [](const Config& c) -> KnobValue { return c.train.beta2; }},
      {"train.eps", [](const Config& c) -> KnobValue { return c.train.eps; }},
      {"train.weight_decay", [](const Config& c) -> KnobValue { return c.train.weight_decay; }},
      {"train.seed", [](const Config& c) -> KnobValue { return static_cast<I>(c.train.seed); }},
      {"train.threads", [](const Config& c) -> KnobValue { return I{c.train.threads}; }},
      {"train.eval_sequences", [](const Config& c) -> KnobValue { return I{c.train.eval_sequences}; }},
  };
  return table;
}

const ConfigKnob* find_knob(std::string_view path) {
  for (const ConfigKnob& knob : knob_table()) {
    if (knob.path == path) return &knob;
  }
  return nullptr;
}

std::optional<double> knob_number(const KnobValue& value) {
  if (const bool* flag = std::get_if<bool>(&value)) return *flag ? 1.0 : 0.0;
  if (const int64_t* integer = std::get_if<int64_t>(&value)) return static_cast<double>(*integer);
  if (const double* real = std::get_if<double>(&value)) return *real;
  return std::nullopt;
}

std::string knob_text(const KnobValue& value) {
  if (const std::string* name = std::get_if<std::string>(&value)) return *name;
  return to_json(value).dump();
}

json to_json(const KnobValue& value) {
  return std::visit([](const auto& held) { return json(held); }, value);
}

json to_json(const Config& c) {
  // ConfigKnob paths are "key" or "group.key": the config is never nested deeper.
  json object = json::object();
  for (const ConfigKnob& knob : knob_table()) {
    const size_t dot = knob.path.find('.');
    json& slot = dot == std::string_view::npos
                     ? object[std::string(knob.path)]
                     : object[std::string(knob.path.substr(0, dot))][std::string(knob.path.substr(dot + 1))];
    slot = to_json(knob.read(c));
  }
  return object;
}

nlohmann::json in_current_spelling(nlohmann::json recorded_config) {
  if (!recorded_config.is_object() || !recorded_config.contains("placement")) return recorded_config;
  json& placement = recorded_config["placement"];
  if (!placement.is_object() || !placement.contains(kOldLinkBandwidthKey) || placement.contains(kLinkBandwidthKey)) {
    return recorded_config;
  }
  placement[kLinkBandwidthKey] = placement[kOldLinkBandwidthKey];
  placement.erase(kOldLinkBandwidthKey);
  return recorded_config;
}

std::string config_id(const Config& config) {
  // nlohmann::json objects keep keys sorted, so the dump is canonical.
  const std::string text = to_json(config).dump();
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a offset basis
  for (unsigned char ch : text) {
    hash ^= ch;
    hash *= 0x100000001b3ull;  // FNV prime
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

bool operator==(const Config& a, const Config& b) { return to_json(a) == to_json(b); }

}  // namespace memfront
