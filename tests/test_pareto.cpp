// Pareto ranks, fronts, crowding, hypervolume and knee (core/pareto.h),
// checked against brute-force definitions on seeded random point sets: ranks
// as the longest chain of dominators, hypervolume of small-integer points as a
// count of the unit cells they dominate, and by inclusion-exclusion for
// real-valued ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/pareto.h"

namespace memfront {
namespace {

using Points = std::vector<ObjectivePoint>;
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- generators -------------------------------------------------------------

// Integer coordinates in [0, levels): few levels give many ties and duplicates.
Points integer_points(std::mt19937_64& rng, size_t count, size_t dims, int levels) {
  std::uniform_int_distribution<int> value(0, levels - 1);
  Points points(count, ObjectivePoint(dims));
  for (auto& point : points) {
    for (double& x : point) x = value(rng);
  }
  return points;
}

Points real_points(std::mt19937_64& rng, size_t count, size_t dims) {
  std::uniform_real_distribution<double> value(0.0, 1.0);
  Points points(count, ObjectivePoint(dims));
  for (auto& point : points) {
    for (double& x : point) x = value(rng);
  }
  return points;
}

// Points on the positive unit sphere's lower face, 1 - |x| normalized: all
// mutually non-dominated, the hard case for hypervolume.
Points front_points(std::mt19937_64& rng, size_t count, size_t dims) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Points points(count, ObjectivePoint(dims));
  for (auto& point : points) {
    double norm = 0.0;
    for (double& x : point) {
      x = std::abs(normal(rng)) + 1e-9;
      norm += x * x;
    }
    for (double& x : point) x = 1.0 - x / std::sqrt(norm);
  }
  return points;
}

// ---- brute force -----------------------------------------------------------

bool brute_dominates(const ObjectivePoint& a, const ObjectivePoint& b) {
  bool all_no_worse = true;
  bool any_better = false;
  for (size_t k = 0; k < a.size(); ++k) {
    all_no_worse = all_no_worse && a[k] <= b[k];
    any_better = any_better || a[k] < b[k];
  }
  return all_no_worse && any_better;
}

// rank = length of the longest chain of points dominating it.
std::vector<int> brute_ranks(const Points& points) {
  const size_t n = points.size();
  std::vector<int> rank(n, -1);
  std::function<int(size_t)> chain = [&](size_t i) {
    if (rank[i] >= 0) return rank[i];
    int longest = 0;
    for (size_t j = 0; j < n; ++j) {
      if (brute_dominates(points[j], points[i])) longest = std::max(longest, chain(j) + 1);
    }
    return rank[i] = longest;
  };
  for (size_t i = 0; i < n; ++i) chain(i);
  return rank;
}

std::vector<size_t> brute_front(const Points& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (const auto& other : points) dominated = dominated || brute_dominates(other, points[i]);
    if (!dominated) front.push_back(i);
  }
  return front;
}

// Number of unit cells [c, c+1] inside [0, reference)^d that some point weakly
// dominates (p <= c in every objective): the exact volume for integer points.
int64_t brute_cells(const Points& points, int reference, size_t dims) {
  int64_t cells = 1;
  for (size_t k = 0; k < dims; ++k) cells *= reference;
  int64_t covered = 0;
  std::vector<int> cell(dims, 0);
  for (int64_t c = 0; c < cells; ++c) {
    int64_t rest = c;
    for (size_t k = 0; k < dims; ++k) {
      cell[k] = static_cast<int>(rest % reference);
      rest /= reference;
    }
    for (const auto& point : points) {
      bool inside = true;
      for (size_t k = 0; k < dims && inside; ++k) inside = point[k] <= cell[k];
      if (inside) {
        ++covered;
        break;
      }
    }
  }
  return covered;
}

// Inclusion-exclusion over all subsets of the points inside the reference:
// the union of boxes, exact up to rounding; for at most ~12 points.
double brute_union(const Points& points, const ObjectivePoint& reference) {
  Points inside;
  for (const auto& point : points) {
    bool ok = true;
    for (size_t k = 0; k < reference.size(); ++k) ok = ok && point[k] < reference[k];
    if (ok) inside.push_back(point);
  }
  double total = 0.0;
  const size_t n = inside.size();
  for (uint32_t subset = 1; subset < (1u << n); ++subset) {
    ObjectivePoint corner(reference.size(), -kInf);
    for (size_t i = 0; i < n; ++i) {
      if (!(subset >> i & 1u)) continue;
      for (size_t k = 0; k < reference.size(); ++k) corner[k] = std::max(corner[k], inside[i][k]);
    }
    double box = 1.0;
    for (size_t k = 0; k < reference.size(); ++k) box *= reference[k] - corner[k];
    total += (std::popcount(subset) % 2 == 1) ? box : -box;
  }
  return total;
}

// ---- dominance and ranks ---------------------------------------------------

TEST(Dominance, TruthTable) {
  EXPECT_TRUE(dominates({1, 2}, {2, 2}));
  EXPECT_FALSE(dominates({2, 2}, {1, 2}));
  EXPECT_TRUE(dominates({1, 1}, {2, 2}));
  EXPECT_FALSE(dominates({1, 2}, {1, 2}));  // equal: neither
  EXPECT_FALSE(dominates({1, 3}, {2, 2}));  // trade-off: neither
  EXPECT_FALSE(dominates({2, 2}, {1, 3}));
  EXPECT_TRUE(dominates({0}, {1}));
  EXPECT_FALSE(dominates({1}, {1}));
  EXPECT_TRUE(dominates({-5, 0, 3}, {-5, 0, 4}));
  EXPECT_FALSE(dominates({}, {}));
  EXPECT_THROW(dominates({1, 2}, {1, 2, 3}), std::invalid_argument);
}

TEST(Dominance, RanksOnSmallExample) {
  // (3,3) is dominated by (2,2) which is dominated by (1,1); (0,5) and (5,0)
  // trade off with everything; (2,2) appears twice.
  const Points points = {{3, 3}, {1, 1}, {2, 2}, {0, 5}, {5, 0}, {2, 2}, {4, 4}};
  EXPECT_EQ(nondominated_ranks(points), (std::vector<int>{2, 0, 1, 0, 0, 1, 3}));
  EXPECT_EQ(pareto_front(points), (std::vector<size_t>{1, 3, 4}));
  EXPECT_TRUE(nondominated_ranks({}).empty());
  EXPECT_TRUE(pareto_front({}).empty());
  EXPECT_THROW(nondominated_ranks({{1, 2}, {1}}), std::invalid_argument);
}

TEST(Dominance, DuplicatesShareARank) {
  const Points points = {{1, 1}, {1, 1}, {1, 1}, {2, 2}, {2, 2}};
  EXPECT_EQ(nondominated_ranks(points), (std::vector<int>{0, 0, 0, 1, 1}));
  EXPECT_EQ(pareto_front(points), (std::vector<size_t>{0, 1, 2}));
}

TEST(Dominance, RanksMatchLongestDominatorChain) {
  std::mt19937_64 rng(20240611);
  for (int trial = 0; trial < 400; ++trial) {
    const size_t dims = 2 + trial % 4;
    const size_t count = 1 + rng() % 60;
    // Alternate continuous values with integer grids of 2..5 levels (ties).
    const Points points = trial % 2 == 0 ? real_points(rng, count, dims)
                                         : integer_points(rng, count, dims, 2 + static_cast<int>(rng() % 4));
    const std::vector<int> ranks = nondominated_ranks(points);
    ASSERT_EQ(ranks, brute_ranks(points)) << "trial " << trial;
    ASSERT_EQ(pareto_front(points), brute_front(points)) << "trial " << trial;
    // Equal points always share a rank.
    for (size_t i = 0; i < count; ++i) {
      for (size_t j = 0; j < count; ++j) {
        if (points[i] == points[j]) {
          ASSERT_EQ(ranks[i], ranks[j]);
        }
      }
    }
  }
}

TEST(Dominance, ParetoFrontOfOneObjectiveIsTheMinima) {
  const Points points = {{3}, {1}, {2}, {1}};
  EXPECT_EQ(pareto_front(points), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(nondominated_ranks(points), (std::vector<int>{2, 0, 1, 0}));
}

// ---- crowding ----------------------------------------------------------------

TEST(Crowding, HandComputedFront) {
  // x spans 4, y spans 5. Sorted by x: (1,3) gets (3-0)/4, (3,1) gets (4-1)/4.
  // Sorted by y: (3,1) gets (3-0)/5, (1,3) gets (5-1)/5.
  const Points points = {{0, 5}, {1, 3}, {3, 1}, {4, 0}};
  const std::vector<double> d = crowding_distances(points, {0, 0, 0, 0});
  EXPECT_EQ(d[0], kInf);
  EXPECT_EQ(d[3], kInf);
  EXPECT_DOUBLE_EQ(d[1], 0.75 + 0.8);
  EXPECT_DOUBLE_EQ(d[2], 0.75 + 0.6);
}

TEST(Crowding, EachFrontOnItsOwn) {
  // Front 0 as above, shuffled; front 1 has three points with unit gaps.
  const Points points = {{5, 5}, {3, 1}, {6, 4}, {0, 5}, {4, 6}, {4, 0}, {1, 3}};
  const std::vector<int> ranks = nondominated_ranks(points);
  ASSERT_EQ(ranks, (std::vector<int>{1, 0, 1, 0, 1, 0, 0}));
  const std::vector<double> d = crowding_distances(points, ranks);
  EXPECT_EQ(d[3], kInf);
  EXPECT_EQ(d[5], kInf);
  EXPECT_DOUBLE_EQ(d[6], 1.55);
  EXPECT_DOUBLE_EQ(d[1], 1.35);
  // Front 1: (4,6), (5,5), (6,4); the middle one gets 2/2 + 2/2.
  EXPECT_EQ(d[4], kInf);
  EXPECT_EQ(d[2], kInf);
  EXPECT_DOUBLE_EQ(d[0], 2.0);
}

TEST(Crowding, SmallFrontsAreInfiniteAndFlatObjectivesAddNothing) {
  EXPECT_TRUE(crowding_distances({}, {}).empty());
  EXPECT_EQ(crowding_distances({{1, 2}}, {0}), (std::vector<double>{kInf}));
  EXPECT_EQ(crowding_distances({{1, 2}, {2, 1}}, {0, 0}), (std::vector<double>{kInf, kInf}));
  // The third objective is constant: no extremes, no contribution from it.
  const Points points = {{0, 4, 7}, {1, 2, 7}, {2, 1, 7}, {4, 0, 7}};
  const std::vector<double> d = crowding_distances(points, {0, 0, 0, 0});
  EXPECT_EQ(d[0], kInf);
  EXPECT_EQ(d[3], kInf);
  EXPECT_DOUBLE_EQ(d[1], 2.0 / 4 + 3.0 / 4);
  EXPECT_DOUBLE_EQ(d[2], 3.0 / 4 + 2.0 / 4);
  // All objectives flat (duplicates): nothing separates them.
  EXPECT_EQ(crowding_distances({{1, 1}, {1, 1}, {1, 1}}, {0, 0, 0}), (std::vector<double>{0, 0, 0}));
  EXPECT_THROW(crowding_distances({{1, 1}}, {0, 0}), std::invalid_argument);
  EXPECT_THROW(crowding_distances({{1, std::nan("")}}, {0}), std::invalid_argument);
}

TEST(Crowding, ExtremesInfiniteAndPermutationEquivariant) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const size_t dims = 2 + trial % 3;
    const Points points = real_points(rng, 5 + rng() % 40, dims);
    const std::vector<int> ranks = nondominated_ranks(points);
    const std::vector<double> d = crowding_distances(points, ranks);
    // In every front of three or more, each objective's minimum and maximum
    // are infinite; every distance is non-negative.
    for (int r = 0; r <= *std::max_element(ranks.begin(), ranks.end()); ++r) {
      std::vector<size_t> front;
      for (size_t i = 0; i < points.size(); ++i) {
        if (ranks[i] == r) front.push_back(i);
      }
      for (size_t k = 0; k < dims; ++k) {
        auto by_k = [&](size_t a, size_t b) { return points[a][k] < points[b][k]; };
        EXPECT_EQ(d[*std::min_element(front.begin(), front.end(), by_k)], kInf);
        EXPECT_EQ(d[*std::max_element(front.begin(), front.end(), by_k)], kInf);
      }
    }
    for (double x : d) EXPECT_GE(x, 0.0);
    // Distinct values: reordering the points reorders the distances.
    std::vector<size_t> perm(points.size());
    std::iota(perm.begin(), perm.end(), size_t{0});
    std::shuffle(perm.begin(), perm.end(), rng);
    Points shuffled;
    std::vector<int> shuffled_ranks;
    for (size_t i : perm) {
      shuffled.push_back(points[i]);
      shuffled_ranks.push_back(ranks[i]);
    }
    const std::vector<double> e = crowding_distances(shuffled, shuffled_ranks);
    for (size_t i = 0; i < perm.size(); ++i) EXPECT_DOUBLE_EQ(e[i], d[perm[i]]);
  }
}

// ---- hypervolume -------------------------------------------------------------

TEST(Hypervolume, ClosedForms) {
  EXPECT_EQ(hypervolume({}, {1, 1}), 0.0);
  EXPECT_EQ(hypervolume({{2}, {0.5}, {3}}, {4}), 3.5);
  // One point: the product of its gaps to the reference, in 1..6 objectives.
  for (size_t dims = 1; dims <= 6; ++dims) {
    ObjectivePoint point(dims), reference(dims, 10.0);
    double product = 1.0;
    for (size_t k = 0; k < dims; ++k) {
      point[k] = static_cast<double>(k) + 1.0;
      product *= 10.0 - point[k];
    }
    EXPECT_EQ(hypervolume({point}, reference), product) << dims << " objectives";
  }
  // A 2-D staircase: 3*1 + 2*1 + 1*1... as boxes 3 + (4 - 2) + (3 - 2) = 6.
  EXPECT_EQ(hypervolume({{1, 3}, {2, 2}, {3, 1}}, {4, 4}), 6.0);
  // Two disjoint-corner boxes in 3-D: 2*2*2 + 2*2*2 - 1*1*1 overlap.
  EXPECT_EQ(hypervolume({{0, 1, 1}, {1, 0, 0}}, {2, 2, 2}), 2.0 * 1 * 1 + 1.0 * 2 * 2 - 1.0 * 1 * 1);
}

TEST(Hypervolume, PointsOnOrBeyondTheReferenceAddNothing) {
  const ObjectivePoint reference = {4, 4, 4, 4};
  EXPECT_EQ(hypervolume({{4, 0, 0, 0}}, reference), 0.0);
  EXPECT_EQ(hypervolume({{0, 5, 0, 0}}, reference), 0.0);
  EXPECT_EQ(hypervolume({{0, 0, 0, std::nan("")}}, reference), 0.0);
  EXPECT_EQ(hypervolume({{3, 3, 3, 3}, {4, 0, 0, 0}, {-1, -1, 9, -1}}, reference), 1.0);
  EXPECT_EQ(hypervolume({{1, 1}, {2, 2}}, {1, 3}), 0.0);
  EXPECT_THROW(hypervolume({{1, 1}}, {}), std::invalid_argument);
  EXPECT_THROW(hypervolume({{1, 1}}, {2, 2, 2}), std::invalid_argument);
  EXPECT_THROW(hypervolume({{1, 1}}, {2, std::nan("")}), std::invalid_argument);
}

TEST(Hypervolume, CountsDominatedUnitCells) {
  // Integer coordinates in [0, R] (R itself lies on the reference and adds
  // nothing), so the exact volume is a cell count.
  struct Case {
    size_t dims;
    int reference;
    int trials;
    size_t max_points;
  };
  const Case cases[] = {{2, 24, 150, 40}, {3, 10, 150, 40}, {4, 7, 120, 40}, {5, 5, 80, 30}};
  std::mt19937_64 rng(99);
  for (const Case& c : cases) {
    const ObjectivePoint reference(c.dims, c.reference);
    for (int trial = 0; trial < c.trials; ++trial) {
      const Points points = integer_points(rng, 1 + rng() % c.max_points, c.dims, c.reference + 1);
      const double expected = static_cast<double>(brute_cells(points, c.reference, c.dims));
      ASSERT_EQ(hypervolume(points, reference), expected) << c.dims << " objectives, trial " << trial;
    }
  }
}

TEST(Hypervolume, MatchesInclusionExclusionOnRealPoints) {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t dims = 2 + trial % 5;  // 2..6 objectives
    const Points points = real_points(rng, 1 + rng() % 11, dims);
    const ObjectivePoint reference(dims, 1.1);
    const double expected = brute_union(points, reference);
    ASSERT_NEAR(hypervolume(points, reference), expected, 1e-12 * std::max(1.0, expected))
        << dims << " objectives, trial " << trial;
  }
}

TEST(Hypervolume, InvariantUnderDominatedPointsDuplicatesAndOrder) {
  std::mt19937_64 rng(4242);
  for (int trial = 0; trial < 100; ++trial) {
    const size_t dims = 2 + trial % 4;
    const int levels = 9;
    const ObjectivePoint reference(dims, levels);
    Points points = integer_points(rng, 1 + rng() % 30, dims, levels);
    const double base = hypervolume(points, reference);

    // Integer inputs make every partial volume exact, so equality is exact.
    Points more = points;
    for (size_t i = 0; i < points.size(); ++i) {
      ObjectivePoint worse = points[i];
      for (double& x : worse) x += static_cast<double>(rng() % 3);  // weakly dominated
      more.push_back(worse);
      more.push_back(points[i]);  // duplicate
    }
    std::shuffle(more.begin(), more.end(), rng);
    ASSERT_EQ(hypervolume(more, reference), base) << "trial " << trial;

    // Adding a point never lowers the volume.
    Points grown = points;
    grown.push_back(integer_points(rng, 1, dims, levels)[0]);
    ASSERT_GE(hypervolume(grown, reference), base) << "trial " << trial;
  }
}

TEST(Hypervolume, ConstantExtraObjectiveScalesTheVolume) {
  // Appending an objective every point shares at c multiplies the volume by
  // (reference - c): ties the d-objective code to the (d-1)-objective one.
  std::mt19937_64 rng(31337);
  for (int trial = 0; trial < 40; ++trial) {
    const size_t dims = 1 + trial % 4;
    Points points = integer_points(rng, 1 + rng() % 25, dims, 8);
    const double base = hypervolume(points, ObjectivePoint(dims, 8));
    for (auto& point : points) point.push_back(3);
    ASSERT_EQ(hypervolume(points, ObjectivePoint(dims + 1, 8)), base * 5) << "trial " << trial;
  }
}

TEST(Hypervolume, HundredPointFrontsInFourAndFiveObjectives) {
  // All points mutually non-dominated: the expensive case. Permuting the
  // objectives changes every slice the algorithm takes, not the volume.
  std::mt19937_64 rng(2718);
  for (size_t dims : {4, 5}) {
    const Points points = front_points(rng, 100, dims);
    const ObjectivePoint reference(dims, 1.0);
    const auto start = std::chrono::steady_clock::now();
    const double volume = hypervolume(points, reference);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    RecordProperty("seconds_" + std::to_string(dims), std::to_string(seconds));
    EXPECT_GT(volume, 0.0);
    EXPECT_LT(volume, 1.0);

    Points rotated = points;
    for (auto& point : rotated) std::rotate(point.begin(), point.begin() + 1, point.end());
    std::reverse(rotated.begin(), rotated.end());
    EXPECT_NEAR(hypervolume(rotated, reference), volume, 1e-12);
  }
}

// ---- knee ----------------------------------------------------------------------

TEST(Knee, ConvexFront) {
  // Normalized by 10 in both objectives: squared distances 1, .26, .13, .2, 1.
  EXPECT_EQ(knee_point({{0, 10}, {1, 5}, {2, 3}, {4, 2}, {10, 0}}), 2u);
  // Scaling one objective does not move the knee.
  EXPECT_EQ(knee_point({{0, 1000}, {1, 500}, {2, 300}, {4, 200}, {10, 0}}), 2u);
  EXPECT_EQ(knee_point({{10, 0}, {4, 2}, {2, 3}, {1, 5}, {0, 10}}), 2u);
}

TEST(Knee, SinglePointAndTies) {
  EXPECT_EQ(knee_point({{3, 4, 5}}), 0u);
  // (1,2) and (2,1) tie at (1/3)^2 + (2/3)^2: the lower index wins.
  EXPECT_EQ(knee_point({{0, 3}, {1, 2}, {2, 1}, {3, 0}}), 1u);
  EXPECT_EQ(knee_point({{3, 0}, {2, 1}, {1, 2}, {0, 3}}), 1u);
  EXPECT_EQ(knee_point({{1, 0}, {0, 1}}), 0u);
  // Duplicates everywhere: every point is at distance 0.
  EXPECT_EQ(knee_point({{2, 2}, {2, 2}, {2, 2}}), 0u);
  // The second objective has no spread and normalizes to 0 everywhere.
  EXPECT_EQ(knee_point({{5, 7}, {1, 7}, {3, 7}}), 1u);
  EXPECT_THROW(knee_point({}), std::invalid_argument);
  EXPECT_THROW(knee_point({{1, 2}, {1}}), std::invalid_argument);
}

}  // namespace
}  // namespace memfront
