#pragma once
// Config: the model shape and every knob of one trial (DESIGN.md, "The knobs").
//
// A config is parsed from JSON with defaults for every field, validated as a
// whole (knobs interact), and normalized, so that two configs that mean the same
// run have the same normalized JSON and therefore the same id. Errors are
// InputError with one line: "<source>: <json pointer>: <what was expected>".
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/dtype.h"

namespace memfront {

// GPT-style decoder shape, in DESIGN.md's letters.
struct ModelShape {
  int vocab = 256;  // V; tokens are uint16, so V <= 65536
  int seq = 64;     // T
  int width = 64;   // C
  int heads = 4;    // H; C % H == 0
  int layers = 4;   // L
};

enum class ShardStrategy { ddp, zero1, zero2, zero3, hybrid };

// Each strategy's name and what it partitions over its shard group (DESIGN.md,
// "The knobs"): the one table that the config's parsing and validation, the
// kernels (kernels/shard.cpp) and the cost model read. Listed in enum order.
struct StrategyTraits {
  ShardStrategy strategy;
  std::string_view name;  // as in config and study files
  bool shards_optimizer;  // each rank keeps and updates its shard of the AdamW moments
  bool shards_grads;      // gradients are reduced into their owner's shard as soon as backward is done with a unit
  bool shards_params;     // each rank keeps its shard of the parameters and gathers a unit while it is used
};
inline constexpr std::array<StrategyTraits, 5> kShardStrategies = {{
    {ShardStrategy::ddp, "ddp", false, false, false},
    {ShardStrategy::zero1, "zero1", true, false, false},
    {ShardStrategy::zero2, "zero2", true, true, false},
    {ShardStrategy::zero3, "zero3", true, true, true},
    {ShardStrategy::hybrid, "hybrid", true, true, true},  // zero3 inside each shard group, replicated across them
}};
constexpr const StrategyTraits& traits(ShardStrategy strategy) {
  return kShardStrategies[static_cast<size_t>(strategy)];
}

enum class PlacementOrder { block, cyclic, explicit_list };
enum class CollectiveAlgo { flat, hierarchical };
enum class Backend { cpu, cuda };
enum class DataSource { synthetic, file };

std::string_view to_string(ShardStrategy v);
std::string_view to_string(PlacementOrder v);
std::string_view to_string(CollectiveAlgo v);
std::string_view to_string(Backend v);
std::string_view to_string(DataSource v);

struct Config {
  ModelShape model;

  struct Batch {
    int micro = 4;  // B: sequences per micro-batch per rank
    int accum = 1;  // micro-batches accumulated before each optimizer step
  } batch;

  struct Checkpoint {
    int every = 0;  // 0 = off; k = keep the input of every k-th block, recompute the rest
  } checkpoint;

  struct Precision {
    DType activations = DType::fp32;  // storage of saved activations: fp32 bf16 fp8e4m3 int8
    DType compute = DType::fp32;      // GEMM math: fp32, or bf16 (GPU only)
  } precision;

  struct Quant {
    DType grad = DType::fp32;     // gradients on the wire: fp32 bf16 int8 int4
    DType weights = DType::fp32;  // parameters on the wire in zero3/hybrid gathers: fp32 bf16 int8
    int block = 256;              // elements per scale block of the scaled formats
    bool error_feedback = true;   // keep the quantization residual and add it next step
  } quant;

  struct TopK {
    double grad = 1.0;           // density of the gradient entries sent, in (0, 1]
    int attention = 0;           // 0 = dense; k = each query attends to its k best keys
    bool error_feedback = true;  // keep the unsent residual and add it next step
  } topk;

  struct Shard {
    ShardStrategy strategy = ShardStrategy::ddp;
    int group = 1;  // hybrid: ranks per shard group (divides world); parse sets it to world otherwise
  } shard;

  struct Placement {
    int ranks_per_node = 1;  // divides world; absent (or 0) in JSON means all ranks on one node: world
    PlacementOrder order = PlacementOrder::block;
    std::vector<int> node_of_rank;  // explicit_list only: node index of each rank
    CollectiveAlgo collectives = CollectiveAlgo::flat;
    double link_latency_us = 5.0;       // emulated inter-node link on one host
    double link_bandwidth_gbps = 10.0;  // GB/s of the emulated inter-node link (key kLinkBandwidthKey)
  } placement;

  int world = 1;  // ranks
  Backend backend = Backend::cpu;

  struct Data {
    DataSource source = DataSource::synthetic;
    std::string path;        // file: flat little-endian uint16 token array
    uint64_t seed = 1;       // data order; the same seed gives the same batches on every config
    double noise = 0.25;     // synthetic: probability that a token is uniform noise
  } data;

  struct Train {
    int steps = 20;          // optimizer steps that are timed
    int warmup = 2;          // optimizer steps run before timing starts (they train too)
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.0;
    uint64_t seed = 42;      // parameter initialization
    int threads = 1;         // BLAS threads per rank
    // Held-out sequences that give final_loss: a fixed set, whatever
    // batch.micro and world, so that configurations that train alike report
    // the same loss (evaluated in micro-batches of batch.micro).
    int eval_sequences = 16;
  } train;
};

// Parses and validates; `source` names the file (or "<string>") in errors.
Config parse_config(const nlohmann::json& json, std::string_view source);

// The emulated link's bandwidth in a config's "placement", in GB/s (10^9
// bytes per second). Its earlier key read as gigabits: parse_config rejects
// it, naming the new one.
inline constexpr const char* kLinkBandwidthKey = "link_bandwidth_gigabytes_per_s";
inline constexpr const char* kOldLinkBandwidthKey = "link_bandwidth_gbps";

// A config as a record of an earlier memfront holds it, in today's keys (the
// old link bandwidth key becomes kLinkBandwidthKey, same value), so that
// recorded results keep reading while a config a person writes must use the
// new key.
nlohmann::json in_current_spelling(nlohmann::json recorded_config);

// The first rule of the config that a JSON value breaks, as data: callers that
// count or group invalid configs (enumerate_space) read the pointer instead of
// taking an error message apart.
struct ConfigViolation {
  std::string source;    // the file, or what the config was made from
  std::string pointer;   // JSON pointer of the knob the rule names, "/shard/group"; "/" for the whole config
  std::string expected;  // what was expected, and what was found
  // "<source>: <pointer>: <expected>": the one line of parse_config's InputError.
  std::string message() const;
  // The pointer in a document that holds the config at `parent`: "/config/shard/group".
  std::string pointer_under(std::string_view parent) const;
};

// Parses and validates like parse_config; a broken rule comes back as the
// violation instead of being thrown.
std::variant<Config, ConfigViolation> check_config(const nlohmann::json& json, std::string_view source);
Config parse_config_text(std::string_view text, std::string_view source);
Config load_config(const std::filesystem::path& path);

// ---------------------------------------------------------------------------
// The knob table: every leaf of a Config, by the dotted path that study files
// ("space"), --where filters and config.<path> metric names spell, with how to
// read its value from a typed Config. to_json(Config) is written from it, so
// the table and the normalized JSON cannot disagree about a knob.

// A knob's value: a flag, an integer, a real, a name (strategies, formats and
// the other enums as config files spell them), or placement.order's explicit
// rank -> node list.
using KnobValue = std::variant<bool, int64_t, double, std::string, std::vector<int>>;

struct ConfigKnob {
  std::string_view path;              // "shard.strategy"; "world" for a top-level knob
  KnobValue (*read)(const Config&);   // never fails: every Config has every knob
};

// Every knob, grouped as the config file groups them.
const std::vector<ConfigKnob>& knob_table();
// The knob at a dotted path, or null when the config has no such leaf: resolve
// a name once with it, then read any number of configs without a lookup.
const ConfigKnob* find_knob(std::string_view path);

// The value as a number: flags as 1 and 0, integers and reals as they are;
// nullopt for names and lists.
std::optional<double> knob_number(const KnobValue& value);
// The value as a person reads it: a name as it is, everything else as the
// normalized JSON writes it (2, 0.001, true, [0,1,0,1]).
std::string knob_text(const KnobValue& value);
nlohmann::json to_json(const KnobValue& value);

// Normalized JSON with every field present, one member per knob of
// knob_table(); parse_config(to_json(c)) == c.
nlohmann::json to_json(const Config& config);

// Stable id of the normalized config: 16 hex digits of a 64-bit FNV-1a hash
// of its compact JSON dump (keys sorted).
std::string config_id(const Config& config);

bool operator==(const Config& a, const Config& b);

}  // namespace memfront
