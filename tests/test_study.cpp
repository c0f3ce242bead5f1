#include "tuner/study.h"

#include <string>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"

namespace memfront {
namespace {

using nlohmann::json;

const std::string kStudies = std::string(MEMFRONT_TEST_DATA) + "/studies";

// The smallest valid study, to which each test adds what it is about.
json minimal() {
  return json::parse(R"({"study": "s", "objectives": [{"metric": "peak_mem"}]})");
}

json with(json study, const json& patch) {
  study.merge_patch(patch);
  return study;
}

std::string error_of(const json& study) {
  try {
    parse_study(study, "study.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

std::string enumerate_error(const json& study) {
  try {
    enumerate_space(parse_study(study, "study.json"));
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

std::vector<json> values_of(const std::string& knob, const json& space_entry) {
  const Study study = parse_study(with(minimal(), {{"space", {{knob, space_entry}}}}), "study.json");
  return study.space.at(0).values;
}

TEST(Study, LoadsAFullStudy) {
  const Study study = load_study(kStudies + "/full.json");
  EXPECT_EQ(study.name, "full");
  EXPECT_EQ(study.path, kStudies + "/full.json");
  EXPECT_EQ(study.base["world"], 4);

  ASSERT_EQ(study.space.size(), 4u);  // in the sorted order of the JSON object's keys
  EXPECT_EQ(study.space[0].path, "checkpoint.every");
  EXPECT_EQ(study.space[0].values, (std::vector<json>{0, 2}));
  EXPECT_EQ(study.space[1].path, "shard.group");
  EXPECT_EQ(study.space[2].path, "shard.strategy");
  EXPECT_EQ(study.space[2].values, (std::vector<json>{"ddp", "zero3", "hybrid"}));
  EXPECT_EQ(study.space[3].path, "topk.grad");
  EXPECT_EQ(study.space[3].values, (std::vector<json>{0.01, 0.1, 1.0}));
  EXPECT_EQ(space_size(study), 18u);

  ASSERT_EQ(study.constraints.size(), 1u);
  EXPECT_EQ(study.constraints[0].pointer, "/constraints/0");
  EXPECT_EQ(study.constraints[0].expr.text(), "shard.strategy == \"ddp\" || topk.grad == 1");
  ASSERT_EQ(study.objectives.size(), 2u);
  EXPECT_EQ(study.objectives[0].metric, "peak_mem");
  EXPECT_EQ(study.objectives[0].goal, Goal::minimize);
  EXPECT_EQ(study.objectives[1].metric, "tokens_per_s");
  EXPECT_EQ(study.objectives[1].goal, Goal::maximize);
  ASSERT_EQ(study.outcome_constraints.size(), 2u);
  EXPECT_EQ(study.outcome_constraints[1].pointer, "/outcome_constraints/1");
  EXPECT_EQ(study.outcome_constraints[1].expr.names(), std::vector<std::string>{"step_time"});

  EXPECT_EQ(study.steps, 6);
  EXPECT_EQ(study.warmup, 1);
  EXPECT_EQ(study.repeats, 2);
  EXPECT_EQ(study.search.strategy, "halving");
  EXPECT_EQ(study.search.budget_trials, 40);
  EXPECT_EQ(study.search.budget_seconds, 900.0);
  EXPECT_EQ(study.search.seed, 7u);
  EXPECT_EQ(study.search.halving_min_steps, 2);
  EXPECT_EQ(study.search.halving_eta, 2);
  EXPECT_EQ(study.search.nsga2_population, 8);
  EXPECT_EQ(study.launcher.kind, "local");
  EXPECT_EQ(study.launcher.timeout_s, 60);
  EXPECT_EQ(study.launcher.mpirun, "/usr/bin/mpirun");
  EXPECT_EQ(study.launcher.mpirun_args, std::vector<std::string>{"--oversubscribe"});
  EXPECT_EQ(study.link_latency_us, 20);
  EXPECT_EQ(study.link_bandwidth_gbps, 2.5);

  // The given reference overrides the base, then takes the study's settings.
  EXPECT_EQ(study.reference.world, 4);
  EXPECT_EQ(study.reference.model.seq, 32);
  EXPECT_EQ(study.reference.train.steps, 6);
  EXPECT_EQ(study.reference.train.warmup, 1);
  EXPECT_EQ(study.reference.placement.link_latency_us, 20);
  EXPECT_EQ(study.reference.placement.link_bandwidth_gbps, 2.5);

  // topk.grad < 1 is invalid with zero3 and hybrid (a config rule): of 18
  // points 8 are invalid, and the constraint passes the other 10.
  const std::vector<Candidate> candidates = enumerate_space(study);
  EXPECT_EQ(candidates.size(), 10u);
  for (const Candidate& c : candidates) {
    EXPECT_TRUE(satisfies_constraints(study, c.config));
    EXPECT_EQ(c.config, config_at(study, c.point));
  }
}

TEST(Study, DefaultsOfAMinimalStudy) {
  const Study study = parse_study(minimal(), "<string>");
  EXPECT_EQ(study.name, "s");
  EXPECT_TRUE(study.path.empty());
  EXPECT_EQ(study.base, json::object());
  EXPECT_TRUE(study.space.empty());
  EXPECT_TRUE(study.constraints.empty());
  EXPECT_TRUE(study.outcome_constraints.empty());
  EXPECT_EQ(study.steps, 20);
  EXPECT_EQ(study.warmup, 2);
  EXPECT_EQ(study.repeats, 1);
  EXPECT_EQ(study.search.strategy, "grid");
  EXPECT_FALSE(study.search.budget_trials);
  EXPECT_FALSE(study.search.budget_seconds);
  EXPECT_EQ(study.launcher.kind, "local");
  EXPECT_EQ(study.launcher.timeout_s, 300);
  EXPECT_EQ(study.link_latency_us, 5);
  EXPECT_EQ(study.link_bandwidth_gbps, 10);

  // An empty space is one point: the base.
  EXPECT_EQ(space_size(study), 1u);
  const std::vector<Candidate> candidates = enumerate_space(study);
  ASSERT_EQ(candidates.size(), 1u);
  EXPECT_TRUE(candidates[0].point.empty());
  EXPECT_EQ(candidates[0].config, parse_config(json::object(), "defaults"));
}

TEST(Study, LauncherTraceSwitch) {
  EXPECT_FALSE(parse_study(minimal(), "<string>").launcher.trace);
  json traced = minimal();
  traced["launcher"] = {{"kind", "local"}, {"trace", true}};
  EXPECT_TRUE(parse_study(traced, "<string>").launcher.trace);
  traced["launcher"]["trace"] = "yes";
  try {
    parse_study(traced, "s.json");
    FAIL() << "a non-boolean trace must be rejected";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("s.json: /launcher/trace: expected true or false"), std::string::npos)
        << e.what();
  }
}

TEST(Study, RepresentativeErrorsExactly) {
  EXPECT_EQ(error_of(with(minimal(), {{"spcae", json::object()}})),
            "study.json: /spcae: unknown key (expected one of: study, base, space, constraints, objectives, "
            "outcome_constraints, reference, steps, warmup, repeats, search, launcher, link)");
  EXPECT_EQ(error_of(with(minimal(), {{"space", {{"shard.grup", {1, 2}}}}})),
            "study.json: /space/shard.grup: unknown knob (expected one of: shard.group, shard.strategy)");
  EXPECT_EQ(error_of(with(minimal(), {{"space", {{"checkpoint.every", {0, 1.5}}}}})),
            "study.json: /space/checkpoint.every/1: expected an integer (checkpoint.every takes integers), got number "
            "1.5");
  EXPECT_EQ(error_of(with(minimal(), {{"constraints", {"world % "}}})),
            "study.json: /constraints/0: expected an operand at column 9 in \"world % \"");
  EXPECT_EQ(error_of(with(minimal(), {{"launcher", {{"kind", "slurm"}}}})),
            "study.json: /launcher/kind: expected \"local\", got \"slurm\" (a Slurm sweep is `memfront sweep "
            "study.json --launcher slurm`)");
  EXPECT_EQ(error_of(with(minimal(), {{"base", {{"model", {{"heads", 5}}}}}})),
            "study.json: /base: /model/heads: must divide model.width=64, got 5");
  EXPECT_EQ(error_of(with(minimal(), {{"base", {{"train", {{"steps", 50}}}}}})),
            "study.json: /base/train/steps: set by the study's \"steps\" (it applies to every trial and to the "
            "reference), not here");
  EXPECT_EQ(error_of(with(minimal(), {{"objectives", json::array()}})),
            "study.json: /objectives: expected at least one objective");
}

TEST(Study, UnknownMetricsAreRejectedBeforeAnyTrial) {
  // Bug: an objective or outcome constraint over 'pek_mem' ran the whole study
  // and reported an empty front.
  EXPECT_EQ(error_of(with(minimal(), {{"objectives", {{{"metric", "pek_mem"}}}}})),
            "study.json: /objectives/0/metric: unknown metric 'pek_mem'; did you mean 'peak_mem'?");
  EXPECT_EQ(error_of(with(minimal(), {{"outcome_constraints", {"step_time < 1s", "pek_mem <= 10MiB"}}})),
            "study.json: /outcome_constraints/1: unknown metric 'pek_mem'; did you mean 'peak_mem'?");
  // Dotted paths into the record and the pandas column names are metrics too.
  EXPECT_NO_THROW(parse_study(with(minimal(), {{"objectives", {{{"metric", "metrics.phase_s.backward"}}}},
                                               {"outcome_constraints", {"step_time_s.p90 < 1s"}}}),
                              "study.json"));
}

// Every other rule, by the start of its message.
TEST(Study, EveryValidationRule) {
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array(), "study.json: /: expected an object, got array"},
      {{{"objectives", {{{"metric", "peak_mem"}}}}}, "study.json: /study: expected the study's name"},
      {with(minimal(), {{"study", 3}}), "study.json: /study: expected a string, got integer 3"},
      {with(minimal(), {{"study", "my study"}}), "study.json: /study: expected a name of letters"},
      {with(minimal(), {{"study", "../x"}}), "study.json: /study: expected a name of letters"},
      {with(minimal(), {{"base", "small.json"}}), "study.json: /base: expected a config object, got string"},
      {with(minimal(), {{"base", {{"modle", json::object()}}}}), "study.json: /base: /modle: unknown key"},
      {with(minimal(), {{"base", {{"train", {{"warmup", 1}}}}}}), "study.json: /base/train/warmup: set by the study's \"warmup\""},
      {with(minimal(), {{"base", {{"placement", {{"link_latency_us", 1}}}}}}),
       "study.json: /base/placement/link_latency_us: set by the study's \"link.latency_us\""},
      {with(minimal(), {{"space", {1, 2}}}), "study.json: /space: expected an object of knob path -> values"},
      {with(minimal(), {{"space", {{"wrold", {1}}}}}),
       "study.json: /space/wrold: unknown knob (expected one of: backend, batch.*, checkpoint.*, data.*, model.*, "
       "placement.*, precision.*, quant.*, shard.*, topk.*, train.*, world)"},
      {with(minimal(), {{"space", {{"shard", {1}}}}}),
       "study.json: /space/shard: a group of knobs (expected one of: shard.group, shard.strategy)"},
      {with(minimal(), {{"space", {{"world.size", {1}}}}}),
       "study.json: /space/world.size: unknown knob: world is a knob, not a group of knobs"},
      {with(minimal(), {{"space", {{"train.steps", {1}}}}}), "study.json: /space/train.steps: set by the study's \"steps\""},
      {with(minimal(), {{"space", {{"world", json::array()}}}}), "study.json: /space/world: expected at least one value"},
      {with(minimal(), {{"space", {{"world", 4}}}}), "study.json: /space/world: expected a list of values or"},
      {with(minimal(), {{"space", {{"world", {1, 2, 1}}}}}), "study.json: /space/world/2: duplicate of value 0 (1)"},
      {with(minimal(), {{"space", {{"shard.strategy", {"ddp", 3}}}}}),
       "study.json: /space/shard.strategy/1: expected a string (shard.strategy takes strings), got integer 3"},
      {with(minimal(), {{"space", {{"quant.error_feedback", {"yes"}}}}}),
       "study.json: /space/quant.error_feedback/0: expected true or false"},
      {with(minimal(), {{"space", {{"topk.grad", {"all"}}}}}),
       "study.json: /space/topk.grad/0: expected a number (topk.grad takes numbers), got string \"all\""},
      {with(minimal(), {{"space", {{"placement.order", {true}}}}}),
       "study.json: /space/placement.order/0: expected \"block\", \"cyclic\" or a rank->node list"},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}, {"stride", 2}}}}}}),
       "study.json: /space/world/stride: unknown key (expected one of: range, step, factor)"},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}}}}}}),
       "study.json: /space/world: expected either \"step\" or \"factor\" beside \"range\""},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}, {"step", 1}, {"factor", 2}}}}}}),
       "study.json: /space/world: expected either \"step\" or \"factor\""},
      {with(minimal(), {{"space", {{"world", {{"range", {1}}, {"step", 1}}}}}}),
       "study.json: /space/world/range: expected [lo, hi], got [1]"},
      {with(minimal(), {{"space", {{"world", {{"step", 1}}}}}}), "study.json: /space/world/range: expected [lo, hi]"},
      {with(minimal(), {{"space", {{"world", {{"range", {8, 1}}, {"step", 1}}}}}}),
       "study.json: /space/world/range: expected lo <= hi, got [8,1]"},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}, {"step", 0}}}}}}),
       "study.json: /space/world/step: must be > 0, got 0"},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}, {"step", 0.5}}}}}}),
       "study.json: /space/world/step: world takes integers; expected an integer, got number 0.5"},
      {with(minimal(), {{"space", {{"world", {{"range", {1.5, 8}}, {"step", 1}}}}}}),
       "study.json: /space/world/range/0: world takes integers; expected an integer, got number 1.5"},
      {with(minimal(), {{"space", {{"world", {{"range", {1, 8}}, {"factor", 1}}}}}}),
       "study.json: /space/world/factor: must be > 1, got 1"},
      {with(minimal(), {{"space", {{"topk.grad", {{"range", {0, 1}}, {"factor", 10}}}}}}),
       "study.json: /space/topk.grad/range/0: a factor range needs lo > 0, got 0"},
      {with(minimal(), {{"space", {{"shard.strategy", {{"range", {0, 1}}, {"step", 1}}}}}}),
       "study.json: /space/shard.strategy: a range needs a numeric knob; shard.strategy takes strings"},
      {with(minimal(), {{"space", {{"topk.grad", {{"range", {0.5, 1}}, {"step", 1e-9}}}}}}),
       "study.json: /space/topk.grad: the range gives more than 10000 values"},
      {with(minimal(), {{"constraints", "world > 1"}}), "study.json: /constraints: expected a list of expressions"},
      {with(minimal(), {{"constraints", {true}}}), "study.json: /constraints/0: expected an expression string, got boolean"},
      {with(minimal(), {{"constraints", {"world > 1", "shard.grup == 2"}}}),
       "study.json: /constraints/1: unknown name 'shard.grup' in \"shard.grup == 2\" (expected a path of the "
       "normalized config, e.g. shard.group)"},
      {with(minimal(), {{"constraints", {"placement.order == \"block\" || model == 1"}}}),
       "study.json: /constraints/0: unknown name 'model'"},
      {with(minimal(), {{"outcome_constraints", {"peak_mem <"}}}),
       "study.json: /outcome_constraints/0: expected an operand at column 11"},
      {{{"study", "s"}}, "study.json: /objectives: expected at least one objective, e.g."},
      {with(minimal(), {{"objectives", {"peak_mem"}}}), "study.json: /objectives/0: expected an object, got string"},
      {with(minimal(), {{"objectives", {{"metric", "peak_mem"}}}}), "study.json: /objectives: expected a list of objectives"},
      {with(minimal(), {{"objectives", {{{"metric", ""}}}}}), "study.json: /objectives/0/metric: expected a metric name"},
      {with(minimal(), {{"objectives", {{{"goal", "max"}}}}}), "study.json: /objectives/0/metric: expected a metric name"},
      {with(minimal(), {{"objectives", {{{"metric", "peak_mem"}, {"goal", "minimize"}}}}}),
       "study.json: /objectives/0/goal: expected \"min\" or \"max\", got \"minimize\""},
      {with(minimal(), {{"objectives", {{{"metric", "peak_mem"}, {"weight", 1}}}}}),
       "study.json: /objectives/0/weight: unknown key (expected one of: metric, goal)"},
      {with(minimal(), {{"objectives", {{{"metric", "peak_mem"}}, {{"metric", "peak_mem"}, {"goal", "max"}}}}}),
       "study.json: /objectives/1/metric: \"peak_mem\" is already an objective"},
      {with(minimal(), {{"reference", {1}}}), "study.json: /reference: expected an object of config overrides"},
      {with(minimal(), {{"reference", {{"shard", {{"strategy", "zero4"}}}}}}),
       "study.json: /reference: /shard/strategy: expected one of ddp, zero1, zero2, zero3, hybrid, got \"zero4\""},
      {with(minimal(), {{"reference", {{"train", {{"steps", 3}}}}}}),
       "study.json: /reference/train/steps: set by the study's \"steps\""},
      {with(minimal(), {{"steps", 0}}), "study.json: /steps: must be 1..1073741824, got 0"},
      {with(minimal(), {{"steps", 2.5}}), "study.json: /steps: expected an integer, got number 2.5"},
      {with(minimal(), {{"warmup", -1}}), "study.json: /warmup: must be 0..1073741824, got -1"},
      {with(minimal(), {{"repeats", 0}}), "study.json: /repeats: must be 1..1073741824, got 0"},
      {with(minimal(), {{"search", {{"strategy", "bayes"}}}}),
       "study.json: /search/strategy: expected one of grid, random, halving, nsga2, got \"bayes\""},
      {with(minimal(), {{"search", {{"budget", {{"trials", 0}}}}}}), "study.json: /search/budget/trials: must be 1.."},
      {with(minimal(), {{"search", {{"budget", {{"seconds", 0}}}}}}), "study.json: /search/budget/seconds: must be > 0, got 0"},
      {with(minimal(), {{"search", {{"budget", {{"minutes", 5}}}}}}),
       "study.json: /search/budget/minutes: unknown key (expected one of: trials, seconds)"},
      {with(minimal(), {{"search", {{"seed", -1}}}}), "study.json: /search/seed: must be >= 0, got -1"},
      {with(minimal(), {{"search", {{"halving", {{"eta", 1}}}}}}), "study.json: /search/halving/eta: must be 2.."},
      {with(minimal(), {{"search", {{"halving", {{"min_steps", 0}}}}}}), "study.json: /search/halving/min_steps: must be 1.."},
      {with(minimal(), {{"steps", 3}, {"search", {{"strategy", "halving"}}}}),
       "study.json: /search/halving/min_steps: must be <= steps=3 for strategy halving, got 4"},
      {with(minimal(), {{"search", {{"nsga2", {{"population", 3}}}}}}), "study.json: /search/nsga2/population: must be 4.."},
      {with(minimal(), {{"search", 5}}), "study.json: /search: expected an object, got integer 5"},
      {with(minimal(), {{"launcher", {{"timeout_s", 0}}}}), "study.json: /launcher/timeout_s: must be > 0, got 0"},
      {with(minimal(), {{"launcher", {{"mpirun", ""}}}}), "study.json: /launcher/mpirun: expected the mpirun command"},
      {with(minimal(), {{"launcher", {{"mpirun_args", "-x"}}}}), "study.json: /launcher/mpirun_args: expected a list of strings"},
      {with(minimal(), {{"launcher", {{"mpirun_args", {"-x", 1}}}}}), "study.json: /launcher/mpirun_args/1: expected a string"},
      {with(minimal(), {{"launcher", {{"hosts", 2}}}}), "study.json: /launcher/hosts: unknown key"},
      {with(minimal(), {{"link", {{"latency_us", -1}}}}), "study.json: /link/latency_us: must be >= 0, got -1"},
      {with(minimal(), {{"link", {{"bandwidth_gbps", 0}}}}), "study.json: /link/bandwidth_gbps: must be > 0, got 0"},
      {with(minimal(), {{"link", {{"bandwidth", 1}}}}), "study.json: /link/bandwidth: unknown key (expected one of: latency_us, bandwidth_gbps)"},
  };
  for (const auto& [study, expected] : cases) {
    const std::string message = error_of(study);
    EXPECT_EQ(message.substr(0, expected.size()), expected) << "study: " << study.dump() << "\nmessage: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Study, KnobPathsAreEscapedAsJsonPointers) {
  EXPECT_EQ(error_of(with(minimal(), {{"space", {{"a/b~c", {1}}}}})).substr(0, 30), "study.json: /space/a~1b~0c: un");
}

TEST(Study, Ranges) {
  // Integer knobs give integers.
  EXPECT_EQ(values_of("batch.micro", {{"range", {1, 8}}, {"step", 3}}), (std::vector<json>{1, 4, 7}));
  EXPECT_EQ(values_of("batch.micro", {{"range", {1, 7}}, {"step", 3}}), (std::vector<json>{1, 4, 7}));
  EXPECT_EQ(values_of("world", {{"range", {1, 16}}, {"factor", 2}}), (std::vector<json>{1, 2, 4, 8, 16}));
  EXPECT_EQ(values_of("world", {{"range", {3, 3}}, {"step", 1}}), (std::vector<json>{3}));
  EXPECT_TRUE(values_of("world", {{"range", {1, 8}}, {"step", 1}})[0].is_number_integer());
  // Number knobs give numbers, written as a person would (0.3, not 0.30000000000000004).
  EXPECT_EQ(values_of("topk.grad", {{"range", {0.01, 1}}, {"factor", 10}}), (std::vector<json>{0.01, 0.1, 1.0}));
  EXPECT_EQ(values_of("topk.grad", {{"range", {0.1, 0.5}}, {"step", 0.1}}),
            (std::vector<json>{0.1, 0.2, 0.3, 0.4, 0.5}));
  const std::vector<json> floats = values_of("topk.grad", {{"range", {1, 1}}, {"step", 1}});
  ASSERT_EQ(floats.size(), 1u);
  EXPECT_TRUE(floats[0].is_number_float());
  // A list keeps its order; a number knob accepts integers.
  EXPECT_EQ(values_of("topk.grad", {1, 0.5}), (std::vector<json>{1, 0.5}));
  EXPECT_EQ(values_of("placement.order", {"block", "cyclic", {0, 0}}), (std::vector<json>{"block", "cyclic", {0, 0}}));
}

TEST(Study, EnumeratesTheGridLastKnobFastest) {
  const Study study = parse_study(
      with(minimal(), {{"space", {{"batch.micro", {1, 2}}, {"checkpoint.every", {0, 1, 2}}}}}), "study.json");
  EXPECT_EQ(space_size(study), 6u);
  const std::vector<Candidate> candidates = enumerate_space(study);
  ASSERT_EQ(candidates.size(), 6u);
  const std::vector<Point> order = {{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {1, 2}};
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(candidates[i].point, order[i]);
    EXPECT_EQ(candidates[i].config.batch.micro, order[i][0] + 1);
    EXPECT_EQ(candidates[i].config.checkpoint.every, order[i][1]);
  }
}

TEST(Study, SkipsInvalidConfigsAndFailedConstraints) {
  // checkpoint.every=8 is invalid with 4 layers; the constraint removes every=1.
  const Study study = parse_study(with(minimal(), {{"space", {{"checkpoint.every", {0, 1, 8}}, {"model.layers", {4, 8}}}},
                                                   {"constraints", {"checkpoint.every != 1"}}}),
                                  "study.json");
  std::vector<Point> points;
  for (const Candidate& c : enumerate_space(study)) points.push_back(c.point);
  EXPECT_EQ(points, (std::vector<Point>{{0, 0}, {0, 1}, {2, 1}}));
  EXPECT_THROW(config_at(study, {2, 0}), InputError);
  // The same point checked gives the rule it breaks as data, which
  // enumerate_space counts invalid points by.
  const std::variant<Config, ConfigViolation> invalid = check_config_at(study, {2, 0});
  ASSERT_TRUE(std::holds_alternative<ConfigViolation>(invalid));
  EXPECT_EQ(std::get<ConfigViolation>(invalid).pointer, "/checkpoint/every");
  EXPECT_EQ(std::get<ConfigViolation>(invalid).message(), "s point [2,0]: /checkpoint/every: must be 0..4 (L=4), got 8");
  EXPECT_EQ(std::get<Config>(check_config_at(study, {2, 1})), config_at(study, {2, 1}));
  EXPECT_FALSE(satisfies_constraints(study, config_at(study, {1, 0})));
  EXPECT_TRUE(satisfies_constraints(study, config_at(study, {2, 1})));
}

TEST(Study, PointsThatNormalizeToOneConfigAreOneCandidate) {
  // Under ddp, parse_config sets shard.group to the world: both points are the same trial.
  const Study study =
      parse_study(with(minimal(), {{"base", {{"world", 2}}}, {"space", {{"shard.group", {1, 2}}}}}), "study.json");
  const std::vector<Candidate> candidates = enumerate_space(study);
  ASSERT_EQ(candidates.size(), 1u);
  EXPECT_EQ(candidates[0].point, (Point{0}));
}

TEST(Study, ConstraintThatRemovesEverythingIsNamed) {
  const json study = with(minimal(), {{"space", {{"checkpoint.every", {0, 1, 2}}}},
                                      {"constraints", {"checkpoint.every < 2", "checkpoint.every > 5", "world > 9"}}});
  EXPECT_EQ(enumerate_error(study),
            "s: /constraints/1: removes every configuration of the space (\"checkpoint.every > 5\" is false for the 2 "
            "valid configs that pass the constraints before it)");
  EXPECT_EQ(enumerate_error(with(minimal(), {{"constraints", {"world > 9"}}})),
            "s: /constraints/0: removes every configuration of the space (\"world > 9\" is false for the 1 valid "
            "configs of the space)");
}

TEST(Study, SpaceOfOnlyInvalidConfigsNamesTheRules) {
  const json study = with(minimal(), {{"space", {{"checkpoint.every", {5, 6}}, {"topk.attention", {0, 100}}}}});
  EXPECT_EQ(enumerate_error(study),
            "s: /space: every point makes an invalid config (4 by /checkpoint/every); the first: s point [0,0]: "
            "/checkpoint/every: must be 0..4 (L=4), got 5");
  const json two_rules = with(minimal(), {{"space", {{"model.layers", {1}}, {"topk.attention", {65, 100}}}}});
  EXPECT_EQ(enumerate_error(two_rules).substr(0, 71),
            "s: /space: every point makes an invalid config (2 by /topk/attention); ");
}

TEST(Study, ConstraintErrorsAreTheStudysNotInvalidPoints) {
  const Study study = parse_study(with(minimal(), {{"constraints", {"shard.strategy > 1"}}}), "study.json");
  try {
    enumerate_space(study);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "study.json: /constraints/0: '>' orders numbers only, got string \"ddp\" and number 1 at column 16 in "
                 "\"shard.strategy > 1\"");
  }
}

TEST(Study, DefaultReferenceIsTheBaseUncompressed) {
  const json base = json::parse(R"({
    "model": {"layers": 4}, "world": 4, "backend": "cpu",
    "placement": {"ranks_per_node": 2, "collectives": "hierarchical"},
    "checkpoint": {"every": 2}, "precision": {"activations": "int8"},
    "topk": {"attention": 8, "error_feedback": false},
    "quant": {"grad": "int4", "weights": "int8"},
    "shard": {"strategy": "hybrid", "group": 2}
  })");
  const Study study = parse_study(with(minimal(), {{"base", base}, {"steps", 3}, {"warmup", 0},
                                                   {"link", {{"latency_us", 1}, {"bandwidth_gbps", 4}}}}),
                                  "study.json");
  const Config& r = study.reference;
  EXPECT_EQ(r.checkpoint.every, 0);
  EXPECT_EQ(r.precision.activations, DType::fp32);
  EXPECT_EQ(r.precision.compute, DType::fp32);
  EXPECT_EQ(r.topk.attention, 0);
  EXPECT_EQ(r.topk.grad, 1.0);
  EXPECT_EQ(r.quant.grad, DType::fp32);
  EXPECT_EQ(r.quant.weights, DType::fp32);
  EXPECT_EQ(r.shard.strategy, ShardStrategy::ddp);
  EXPECT_EQ(r.shard.group, 4);  // normalized: one group of the whole world
  // Kept from the base: world, placement, everything else.
  EXPECT_EQ(r.world, 4);
  EXPECT_EQ(r.placement.ranks_per_node, 2);
  EXPECT_EQ(r.placement.collectives, CollectiveAlgo::hierarchical);
  EXPECT_FALSE(r.topk.error_feedback);
  // The study's settings, as on every config.
  EXPECT_EQ(r.train.steps, 3);
  EXPECT_EQ(r.train.warmup, 0);
  EXPECT_EQ(r.placement.link_latency_us, 1);
  EXPECT_EQ(r.placement.link_bandwidth_gbps, 4);
}

TEST(Study, GivenReferenceIsAMergePatchOfTheBase) {
  const json base = json::parse(R"({"world": 4, "shard": {"strategy": "hybrid", "group": 2}, "checkpoint": {"every": 1}})");
  const json reference = json::parse(R"({"shard": {"strategy": "zero1", "group": null}})");
  const Study study = parse_study(with(minimal(), {{"base", base}, {"reference", reference}}), "study.json");
  EXPECT_EQ(study.reference.shard.strategy, ShardStrategy::zero1);
  EXPECT_EQ(study.reference.shard.group, 4);
  EXPECT_EQ(study.reference.checkpoint.every, 1);  // not in the overrides: the base's
  EXPECT_EQ(study.reference.train.steps, 20);
}

TEST(Study, ConfigAtWritesNestedPathsIntoThePartialBase) {
  // The base has no "model" or "placement" objects: config_at creates them.
  const Study study = parse_study(
      with(minimal(), {{"base", {{"batch", {{"micro", 2}}}}},
                       {"space", {{"model.layers", {2, 6}}, {"placement.ranks_per_node", {1, 2}}, {"world", {2, 4}}}},
                       {"steps", 5}, {"warmup", 1}, {"link", {{"latency_us", 7}, {"bandwidth_gbps", 3}}}}),
      "study.json");
  ASSERT_EQ(study.space[0].path, "model.layers");
  ASSERT_EQ(study.space[1].path, "placement.ranks_per_node");
  const Config c = config_at(study, {1, 1, 1});
  EXPECT_EQ(c.model.layers, 6);
  EXPECT_EQ(c.model.width, 64);  // the other model fields keep their defaults
  EXPECT_EQ(c.placement.ranks_per_node, 2);
  EXPECT_EQ(c.world, 4);
  EXPECT_EQ(c.batch.micro, 2);
  EXPECT_EQ(c.shard.group, 4);  // absent from the base: follows the world
  EXPECT_EQ(c.train.steps, 5);
  EXPECT_EQ(c.train.warmup, 1);
  EXPECT_EQ(c.placement.link_latency_us, 7);
  EXPECT_EQ(c.placement.link_bandwidth_gbps, 3);
  EXPECT_EQ(study.base, json::parse(R"({"batch": {"micro": 2}})"));  // the study's base is untouched

  EXPECT_EQ(config_at(study, {0, 0, 0}).model.layers, 2);
  EXPECT_THROW(config_at(study, {0, 0}), std::out_of_range);
  EXPECT_THROW(config_at(study, {0, 2, 0}), std::out_of_range);
  EXPECT_THROW(config_at(study, {0, -1, 0}), std::out_of_range);
}

TEST(Study, KnobsTheBaseFixesMustFitEveryWorld) {
  // The base fixes ranks_per_node=2: world=1 cannot hold it, and that point is skipped.
  const Study study = parse_study(
      with(minimal(), {{"base", {{"placement", {{"ranks_per_node", 2}}}, {"world", 2}}}, {"space", {{"world", {1, 2, 4}}}}}),
      "study.json");
  try {
    config_at(study, {0});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "s point [0]: /placement/ranks_per_node: must be 0..1, got 2");
  }
  std::vector<int> worlds;
  for (const Candidate& c : enumerate_space(study)) worlds.push_back(c.config.world);
  EXPECT_EQ(worlds, (std::vector<int>{2, 4}));
}

TEST(Study, LoadErrorsNameTheFile) {
  try {
    load_study(kStudies + "/not-json.json");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(kStudies + "/not-json.json:2:1: not valid JSON: syntax error", 0), 0u) << e.what();
  }
  try {
    load_study(kStudies + "/missing.json");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), kStudies + "/missing.json: cannot read the study file: No such file or directory");
  }
}

TEST(Study, EnumerationErrorsOfALoadedStudyNameItsFile) {
  Study study = load_study(kStudies + "/full.json");
  study.space[0].values = {9};  // checkpoint.every=9 > L=4 everywhere
  try {
    enumerate_space(study);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(kStudies + "/full.json: /space: every point makes an invalid config (9 by "
                                                      "/checkpoint/every); the first: full point [0,0,0,0]: ",
                                          0),
              0u)
        << e.what();
  }
}

TEST(Study, TheSpaceKnowsTheKnobsOfTheKnobTable) {
  // The study's catalogue of knob paths and the knob table (core/config.h)
  // are one list: what a space may vary is what records, --where and the
  // viewer can read back. (A few knobs are the study's own fields, such as
  // train.steps: known, but refused in the space.)
  const Config defaults;
  for (const ConfigKnob& knob : knob_table()) {
    const std::string path(knob.path);
    const json value = to_json(knob.read(defaults));
    const std::string error = error_of(with(minimal(), {{"space", {{path, json::array({value})}}}}));
    EXPECT_EQ(error.find("unknown knob"), std::string::npos) << path << ": " << error;
  }
  EXPECT_NE(error_of(with(minimal(), {{"space", {{"shard.strategi", {"ddp"}}}}})).find("unknown knob"),
            std::string::npos);
}

// The reference runs once when it is also a point of the space: a sweep
// counts it once in what it expects.
TEST(Study, KnowsWhetherAConfigIsACandidateOfTheSpace) {
  const Study study = parse_study(
      with(minimal(), {{"space", {{"checkpoint.every", {0, 2}}, {"precision.activations", {"fp32", "int8"}}}},
                       {"constraints", {"checkpoint.every == 0 || precision.activations == \"int8\""}}}),
      "study.json");
  EXPECT_TRUE(space_contains(study, study.reference)) << "fp32, no checkpointing: the space's first point";
  Config other = study.reference;
  other.checkpoint.every = 2;
  EXPECT_FALSE(space_contains(study, other)) << "fp32 with checkpointing breaks the constraint";
  other.precision.activations = DType::int8;
  EXPECT_TRUE(space_contains(study, other));
  other.checkpoint.every = 3;
  EXPECT_FALSE(space_contains(study, other)) << "3 is no value of the space";
  other.checkpoint.every = 2;
  other.model.layers += 1;
  EXPECT_FALSE(space_contains(study, other)) << "a knob outside the space differs";
}

}  // namespace
}  // namespace memfront
