// Config parsing, normalization, ids and the one-line error messages.
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <vector>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"

using memfront::Config;
using memfront::InputError;
using memfront::parse_config_text;
using nlohmann::json;

namespace {

// The InputError message of parsing `text` as "c.json", or "" if it parsed.
std::string error_of(const std::string& text) {
  try {
    parse_config_text(text, "c.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, EmptyObjectGivesDefaults) {
  Config c = parse_config_text("{}", "c.json");
  EXPECT_EQ(c.model.vocab, 256);
  EXPECT_EQ(c.checkpoint.every, 0);
  EXPECT_EQ(c.precision.activations, memfront::DType::fp32);
  EXPECT_EQ(c.shard.strategy, memfront::ShardStrategy::ddp);
  EXPECT_EQ(c.shard.group, 1);                 // normalized to the world
  EXPECT_EQ(c.placement.ranks_per_node, 1);    // all ranks on one node
}

TEST(Config, RoundTripsThroughNormalizedJson) {
  Config c = parse_config_text(R"({"model": {"vocab": 512, "layers": 6}, "checkpoint": {"every": 2},
      "precision": {"activations": "int8"}, "topk": {"attention": 16}, "batch": {"micro": 2, "accum": 3},
      "world": 4, "shard": {"strategy": "hybrid", "group": 2},
      "placement": {"ranks_per_node": 2, "order": [0, 1, 0, 1]}})",
                               "c.json");
  Config again = memfront::parse_config(memfront::to_json(c), "again");
  EXPECT_EQ(c, again);
  EXPECT_EQ(memfront::config_id(c), memfront::config_id(again));
  EXPECT_EQ(memfront::to_json(c)["placement"]["order"], json({0, 1, 0, 1}));
}

TEST(Config, IdIsStableAndSeparatesConfigs) {
  Config a = parse_config_text(R"({"checkpoint": {"every": 1}})", "a");
  Config b = parse_config_text(R"({"checkpoint": {"every": 2}})", "b");
  // Spelled differently, meaning the same: same id.
  Config a2 = parse_config_text(R"({"checkpoint": {"every": 1}, "shard": {"strategy": "ddp"}})", "a2");
  EXPECT_EQ(memfront::config_id(a).size(), 16u);
  EXPECT_EQ(memfront::config_id(a), memfront::config_id(a2));
  EXPECT_NE(memfront::config_id(a), memfront::config_id(b));
}

TEST(Config, UnknownKeyIsAnErrorNamingIt) {
  EXPECT_EQ(error_of(R"({"batch": {"mciro": 4}})"),
            "c.json: /batch/mciro: unknown key (expected one of: accum, micro)");
  EXPECT_NE(error_of(R"({"checkpont": {}})").find("c.json: /checkpont: unknown key"), std::string::npos);
}

TEST(Config, WrongTypeNamesPointerAndType) {
  EXPECT_EQ(error_of(R"({"batch": {"micro": "4"}})"), "c.json: /batch/micro: expected an integer, got string \"4\"");
  EXPECT_EQ(error_of(R"({"model": []})"), "c.json: /model: expected an object, got array");
  EXPECT_EQ(error_of(R"({"precision": {"activations": "fp16"}})"),
            "c.json: /precision/activations: expected one of fp32, bf16, fp8e4m3, int8, got \"fp16\"");
}

TEST(Config, OutOfRangeKnobs) {
  EXPECT_EQ(error_of(R"({"model": {"layers": 12}, "checkpoint": {"every": 13}})"),
            "c.json: /checkpoint/every: must be 0..12 (L=12), got 13");
  EXPECT_EQ(error_of(R"({"topk": {"grad": 0}})"), "c.json: /topk/grad: must be a density in (0, 1], got 0.0");
  EXPECT_EQ(error_of(R"({"model": {"seq": 32}, "topk": {"attention": 33}})"),
            "c.json: /topk/attention: must be 0..32, got 33");
  EXPECT_EQ(error_of(R"({"batch": {"micro": 0}})"), "c.json: /batch/micro: must be 1..1073741824, got 0");
}

// One table names the strategies and says what each partitions: names
// round-trip through config files, and the kernels' and the cost model's
// view of a strategy is DESIGN.md's.
TEST(Config, StrategyTableNamesAndPartitionsEachStrategy) {
  using memfront::ShardStrategy;
  for (const memfront::StrategyTraits& t : memfront::kShardStrategies) {
    EXPECT_EQ(&memfront::traits(t.strategy), &t);
    EXPECT_EQ(memfront::to_string(t.strategy), t.name);
    const std::string group = t.strategy == ShardStrategy::hybrid ? R"(, "group": 2)" : "";
    const Config c = parse_config_text(R"({"world": 4, "shard": {"strategy": ")" + std::string(t.name) + "\"" + group + "}}",
                                       "c.json");
    EXPECT_EQ(c.shard.strategy, t.strategy) << t.name;
    // Each strategy partitions what the one before it did, and more.
    EXPECT_TRUE(!t.shards_params || t.shards_grads) << t.name;
    EXPECT_TRUE(!t.shards_grads || t.shards_optimizer) << t.name;
  }
  EXPECT_FALSE(memfront::traits(ShardStrategy::ddp).shards_optimizer);
  EXPECT_TRUE(memfront::traits(ShardStrategy::zero1).shards_optimizer);
  EXPECT_FALSE(memfront::traits(ShardStrategy::zero1).shards_grads);
  EXPECT_TRUE(memfront::traits(ShardStrategy::zero2).shards_grads);
  EXPECT_FALSE(memfront::traits(ShardStrategy::zero2).shards_params);
  EXPECT_TRUE(memfront::traits(ShardStrategy::zero3).shards_params);
  EXPECT_TRUE(memfront::traits(ShardStrategy::hybrid).shards_params);
  EXPECT_EQ(error_of(R"({"shard": {"strategy": "zero4"}})"),
            "c.json: /shard/strategy: expected one of ddp, zero1, zero2, zero3, hybrid, got \"zero4\"");
}

TEST(Config, InconsistentShape) {
  EXPECT_EQ(error_of(R"({"model": {"width": 64, "heads": 5}})"), "c.json: /model/heads: must divide model.width=64, got 5");
}

TEST(Config, InvalidCombinationsNameTheKnobs) {
  EXPECT_EQ(error_of(R"({"world": 4, "shard": {"strategy": "hybrid", "group": 3}})"),
            "c.json: /shard/group: must divide world=4 for shard.strategy=hybrid, got 3");
  EXPECT_EQ(error_of(R"({"world": 2, "shard": {"strategy": "zero3"}, "topk": {"grad": 0.1}})"),
            "c.json: /topk/grad: topk.grad < 1 needs whole gradients (shard.strategy ddp or zero1), got "
            "shard.strategy=zero3");
  EXPECT_NE(error_of(R"({"quant": {"weights": "int8"}})").find("c.json: /quant/weights: only zero3 and hybrid"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"precision": {"compute": "bf16"}})").find("/precision/compute"), std::string::npos);
  EXPECT_EQ(error_of(R"({"world": 4, "placement": {"ranks_per_node": 3}})"),
            "c.json: /placement/ranks_per_node: must divide world=4, got 3");
  EXPECT_EQ(error_of(R"({"world": 4, "placement": {"ranks_per_node": 2, "order": [0, 0, 0, 1]}})"),
            "c.json: /placement/order: node 0 holds 3 ranks, placement.ranks_per_node=2 expected");
  EXPECT_EQ(error_of(R"({"data": {"source": "file"}})"),
            "c.json: /data/path: data.source=file needs a path to a flat uint16 token file");
}

TEST(Config, CheckConfigGivesTheBrokenRuleAsData) {
  const json hybrid = json::parse(R"({"world": 4, "shard": {"strategy": "hybrid", "group": 3}})");
  const auto checked = memfront::check_config(hybrid, "c.json");
  const auto* violation = std::get_if<memfront::ConfigViolation>(&checked);
  ASSERT_NE(violation, nullptr);
  EXPECT_EQ(violation->source, "c.json");
  EXPECT_EQ(violation->pointer, "/shard/group");
  EXPECT_EQ(violation->expected, "must divide world=4 for shard.strategy=hybrid, got 3");
  // The one line that parse_config throws is built from the same data.
  EXPECT_EQ(violation->message(), error_of(hybrid.dump()));

  // A rule about the whole config names the root.
  const auto not_object = memfront::check_config(json::array(), "c.json");
  ASSERT_TRUE(std::holds_alternative<memfront::ConfigViolation>(not_object));
  EXPECT_EQ(std::get<memfront::ConfigViolation>(not_object).pointer, "/");

  const auto valid = memfront::check_config(json::parse(R"({"world": 4})"), "c.json");
  ASSERT_TRUE(std::holds_alternative<Config>(valid));
  EXPECT_EQ(std::get<Config>(valid).world, 4);
}

TEST(Config, NotJsonNamesTheFile) {
  std::string e = error_of("{\"model\": ");
  EXPECT_EQ(e.rfind("c.json:1:11: not valid JSON: ", 0), 0u) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line";
}

TEST(Config, MissingFileNamesIt) {
  try {
    memfront::load_config("/nonexistent/x.json");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/x.json: cannot read the config file: No such file or directory");
  }
}

TEST(Config, EveryExampleConfigParses) {
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MEMFRONT_EXAMPLES)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    json j = json::parse(in);
    if (!j.contains("model")) continue;  // study files are the tuner's
    EXPECT_NO_THROW(memfront::load_config(entry.path())) << entry.path();
    ++parsed;
  }
  EXPECT_GE(parsed, 1);
}

namespace {

// Configs where the knobs take values other than their defaults, and
// (within each group) other than each other's, so a knob that read the wrong
// field would be caught.
std::vector<Config> knob_probes() {
  return {
      Config{},
      parse_config_text(R"({"model": {"vocab": 300, "seq": 48, "width": 96, "heads": 6, "layers": 5},
          "batch": {"micro": 3, "accum": 7}, "checkpoint": {"every": 2},
          "precision": {"activations": "bf16"}, "quant": {"block": 64, "error_feedback": false},
          "topk": {"grad": 0.25, "attention": 8, "error_feedback": false},
          "world": 6, "shard": {"strategy": "zero1"},
          "placement": {"ranks_per_node": 3, "order": "cyclic", "collectives": "hierarchical",
                        "link_latency_us": 7.5, "link_bandwidth_gigabytes_per_s": 12.5},
          "data": {"seed": 9, "noise": 0.5},
          "train": {"steps": 11, "warmup": 3, "lr": 0.002, "beta1": 0.8, "beta2": 0.85, "eps": 1e-7,
                    "weight_decay": 0.01, "seed": 13, "threads": 2, "eval_sequences": 5}})",
                        "probe 1"),
      parse_config_text(R"({"world": 4, "shard": {"strategy": "hybrid", "group": 2},
          "quant": {"grad": "int8", "weights": "bf16"}, "backend": "cuda", "precision": {"compute": "bf16"},
          "placement": {"ranks_per_node": 2, "order": [1, 0, 0, 1]},
          "data": {"source": "file", "path": "tokens.bin"}})",
                        "probe 2"),
  };
}

// Every leaf of a JSON object as (dotted path, value).
void leaves_of(const json& node, const std::string& prefix, std::map<std::string, json>& out) {
  if (!node.is_object()) {
    out[prefix] = node;
    return;
  }
  for (const auto& [key, value] : node.items()) leaves_of(value, prefix.empty() ? key : prefix + "." + key, out);
}

}  // namespace

TEST(KnobTable, AgreesWithTheNormalizedJsonOnEveryLeaf) {
  for (const Config& config : knob_probes()) {
    std::map<std::string, json> leaves;
    leaves_of(memfront::to_json(config), "", leaves);
    EXPECT_EQ(leaves.size(), memfront::knob_table().size());
    for (const auto& [path, value] : leaves) {
      const memfront::ConfigKnob* knob = memfront::find_knob(path);
      ASSERT_NE(knob, nullptr) << path << " is in the normalized JSON but not in the knob table";
      EXPECT_EQ(memfront::to_json(knob->read(config)), value) << path;
    }
  }
}

TEST(KnobTable, EveryKnobReadsTheFieldThatParsingSets) {
  // Written from the table and parsed by hand-written code: a knob that read
  // another field, or a field no knob reads, changes the config on the way.
  for (const Config& config : knob_probes()) {
    const json written = memfront::to_json(config);
    EXPECT_EQ(memfront::parse_config(written, "again"), config) << written.dump();
  }
  const Config probe = knob_probes()[1];
  for (const memfront::ConfigKnob& knob : memfront::knob_table()) {
    if (knob.path == "data.source" || knob.path == "data.path" || knob.path == "backend" ||
        knob.path == "precision.compute" || knob.path == "quant.grad" || knob.path == "quant.weights") {
      continue;  // at their defaults in probe 1; probe 2 changes them
    }
    EXPECT_NE(knob.read(probe), knob.read(Config{})) << knob.path << " reads the same in probe 1 as by default";
  }
}

TEST(KnobTable, ValuesReadAsNumbersAndText) {
  const Config probe = knob_probes()[2];
  const auto value = [&](std::string_view path) { return memfront::find_knob(path)->read(probe); };
  EXPECT_EQ(memfront::knob_number(value("world")), 4.0);
  EXPECT_EQ(memfront::knob_number(value("quant.error_feedback")), 1.0);
  EXPECT_EQ(memfront::knob_number(value("topk.grad")), 1.0);
  EXPECT_EQ(memfront::knob_number(value("shard.strategy")), std::nullopt);
  EXPECT_EQ(memfront::knob_number(value("placement.order")), std::nullopt);
  EXPECT_EQ(memfront::knob_text(value("shard.strategy")), "hybrid");
  EXPECT_EQ(memfront::knob_text(value("placement.order")), "[1,0,0,1]");
  EXPECT_EQ(memfront::knob_text(value("train.eps")), "1e-08");
  EXPECT_EQ(memfront::knob_text(value("quant.error_feedback")), "true");
  EXPECT_EQ(memfront::find_knob("shard"), nullptr);  // a group, not a knob
  EXPECT_EQ(memfront::find_knob("shard.strategi"), nullptr);
}

TEST(KnobTable, NormalizedJsonKeepsItsBytes) {
  // Results files hold this text; the config ids hash it.
  EXPECT_EQ(memfront::to_json(Config{}).dump(),
            R"({"backend":"cpu","batch":{"accum":1,"micro":4},"checkpoint":{"every":0},)"
            R"("data":{"noise":0.25,"path":"","seed":1,"source":"synthetic"},)"
            R"("model":{"heads":4,"layers":4,"seq":64,"vocab":256,"width":64},)"
            R"("placement":{"collectives":"flat","link_bandwidth_gigabytes_per_s":10.0,"link_latency_us":5.0,"order":"block",)"
            R"("ranks_per_node":1},"precision":{"activations":"fp32","compute":"fp32"},)"
            R"("quant":{"block":256,"error_feedback":true,"grad":"fp32","weights":"fp32"},)"
            R"("shard":{"group":1,"strategy":"ddp"},"topk":{"attention":0,"error_feedback":true,"grad":1.0},)"
            R"("train":{"beta1":0.9,"beta2":0.95,"eps":1e-08,"eval_sequences":16,"lr":0.001,"seed":42,"steps":20,)"
            R"("threads":1,"warmup":2,"weight_decay":0.0},"world":1})");
}

// placement.link_bandwidth_gbps read as gigabits per second while it meant
// GB/s: a config a person writes must use the new key, and is told which; a
// record of an earlier memfront reads with the same value under the new key.
TEST(Config, OldLinkBandwidthKeyIsRejectedNamingTheNewOne) {
  try {
    parse_config_text(R"({"placement": {"link_bandwidth_gbps": 12.5}})", "c.json");
    FAIL() << "the old key was accepted";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "c.json: /placement/link_bandwidth_gbps: renamed placement.link_bandwidth_gigabytes_per_s "
                           "(the same value: GB/s, 10^9 bytes per second)");
  }
  const json recorded = json::parse(R"({"placement": {"link_bandwidth_gbps": 12.5, "link_latency_us": 7}})");
  const Config config = memfront::parse_config(memfront::in_current_spelling(recorded), "record");
  EXPECT_EQ(config.placement.link_bandwidth_gbps, 12.5);
  EXPECT_EQ(to_json(config)["placement"]["link_bandwidth_gigabytes_per_s"], 12.5);
  EXPECT_EQ(to_json(config)["placement"].count("link_bandwidth_gbps"), 0u);
  EXPECT_EQ(memfront::in_current_spelling(json::parse(R"({"world": 2})")), json::parse(R"({"world": 2})"));
}

// An older config's eval_batches micro-batches of batch.micro sequences are
// the same held-out sequences as eval_sequences = their product; giving both
// is an error naming the older key.
TEST(Config, EvalBatchesReadsAsTheSequencesItEvaluated) {
  const Config old = parse_config_text(R"({"batch": {"micro": 6}, "train": {"eval_batches": 3}})", "old");
  EXPECT_EQ(old.train.eval_sequences, 18);
  EXPECT_EQ(to_json(old)["train"].count("eval_batches"), 0u);
  EXPECT_EQ(to_json(old)["train"]["eval_sequences"], 18);
  EXPECT_EQ(parse_config_text("{}", "default").train.eval_sequences, 16) << "independent of batch.micro";
  try {
    parse_config_text(R"({"train": {"eval_batches": 3, "eval_sequences": 8}})", "both.json");
    FAIL() << "both keys were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("both.json: /train/eval_batches: the older spelling of eval_sequences"),
              std::string::npos)
        << e.what();
  }
}
