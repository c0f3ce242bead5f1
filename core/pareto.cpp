// Pareto ranks, crowding distances, exact hypervolume and the knee of a front
// (core/pareto.h). Every objective is minimized.
#include "core/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

namespace memfront {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Mixing points of different lengths is a programming error, not bad input.
void check_dimensions(const std::vector<ObjectivePoint>& points, size_t dims, const char* function) {
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].size() != dims) {
      throw std::invalid_argument(std::string(function) + ": point " + std::to_string(i) + " has " +
                                  std::to_string(points[i].size()) + " objectives, expected " +
                                  std::to_string(dims));
    }
  }
}

// Sorting by a NaN breaks std::sort's strict weak ordering, so the functions
// that sort by objective value refuse NaN outright.
void check_no_nan(const std::vector<ObjectivePoint>& points, const char* function) {
  for (size_t i = 0; i < points.size(); ++i) {
    for (double value : points[i]) {
      if (std::isnan(value)) {
        throw std::invalid_argument(std::string(function) + ": point " + std::to_string(i) + " has a NaN objective");
      }
    }
  }
}

enum class Relation { first_dominates, second_dominates, neither };

// One pass over the objectives decides both directions of dominance.
Relation compare(const ObjectivePoint& a, const ObjectivePoint& b) {
  bool a_better = false;
  bool b_better = false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] < b[k]) a_better = true;
    if (b[k] < a[k]) b_better = true;
    if (a_better && b_better) return Relation::neither;
  }
  if (a_better) return Relation::first_dominates;
  if (b_better) return Relation::second_dominates;
  return Relation::neither;  // equal points: neither dominates
}

bool dominates_unchecked(const ObjectivePoint& a, const ObjectivePoint& b) {
  bool better = false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) better = true;
  }
  return better;
}

// Exact hypervolume of points stored row-major in flat buffers.
//
// Every set handed between the steps below is non-dominated, free of
// duplicates and sorted lexicographically, so coordinate 0 ascends. Each step
// sweeps (or slices) along coordinate 0 and works on coordinates 1..d-1, so a
// set of d objectives uses the last d coordinates of the reference.
class Hypervolume {
 public:
  explicit Hypervolume(const ObjectivePoint& reference)
      : reference_(reference), dims_(reference.size()), levels_(reference.size()) {}

  double operator()(const std::vector<ObjectivePoint>& points) {
    // Points on or beyond the reference in any objective bound an empty box
    // (the negated test also drops NaN coordinates).
    Level& top = levels_[0];
    top.raw.clear();
    size_t count = 0;
    for (const ObjectivePoint& point : points) {
      bool inside = true;
      for (size_t k = 0; k < dims_; ++k) inside = inside && point[k] < reference_[k];
      if (!inside) continue;
      top.raw.insert(top.raw.end(), point.begin(), point.end());
      ++count;
    }
    const size_t kept = keep_nondominated(top, count, dims_);
    return volume(0, top.kept.data(), kept, dims_);
  }

 private:
  // Buffers for one depth of the slicing recursion, reused by every call at
  // that depth so the recursion allocates only while buffers grow.
  struct Level {
    std::vector<double> raw;    // candidate rows, any order
    std::vector<size_t> order;  // lexicographic order of raw
    std::vector<double> kept;   // the non-dominated rows of raw, in that order
  };

  // Moves the rows of level.raw that no other row weakly dominates into
  // level.kept, sorted lexicographically, and returns how many there are.
  // A row can only be weakly dominated by a row that sorts before it, and a
  // dropped row's dominator is itself dominated by a kept row, so each row is
  // checked against the kept rows only. Duplicates keep their first copy.
  static size_t keep_nondominated(Level& level, size_t count, size_t dims) {
    const double* rows = level.raw.data();
    level.order.resize(count);
    std::iota(level.order.begin(), level.order.end(), size_t{0});
    std::sort(level.order.begin(), level.order.end(), [&](size_t a, size_t b) {
      const double* ra = rows + a * dims;
      const double* rb = rows + b * dims;
      for (size_t k = 0; k < dims; ++k) {
        if (ra[k] != rb[k]) return ra[k] < rb[k];
      }
      return a < b;  // identical rows: the order is fixed anyway
    });
    level.kept.resize(count * dims);
    size_t kept = 0;
    for (size_t index : level.order) {
      const double* row = rows + index * dims;
      bool dominated = false;
      for (size_t j = 0; j < kept && !dominated; ++j) {
        const double* other = level.kept.data() + j * dims;
        dominated = true;
        for (size_t k = 0; k < dims && dominated; ++k) dominated = other[k] <= row[k];
      }
      if (dominated) continue;
      std::copy(row, row + dims, level.kept.data() + kept * dims);
      ++kept;
    }
    return kept;
  }

  // Volume of `count` non-dominated, lexicographically sorted rows of `dims`
  // objectives, at recursion depth `depth`.
  double volume(size_t depth, const double* rows, size_t count, size_t dims) {
    if (count == 0) return 0.0;
    const double* reference = reference_.data() + (dims_ - dims);
    switch (dims) {
      case 1: return reference[0] - rows[0];
      case 2: return area_sweep(rows, count, reference);
      case 3: return volume_sweep(rows, count, reference);
      default: return volume_slices(depth, rows, count, dims, reference);
    }
  }

  // 2-D: along x the rows' y falls, and each row adds the strip between its y
  // and the lowest y so far, from its x to the reference.
  static double area_sweep(const double* rows, size_t count, const double* reference) {
    double area = 0.0;
    double ceiling = reference[1];
    for (size_t i = 0; i < count; ++i) {
      const double x = rows[2 * i];
      const double y = rows[2 * i + 1];
      if (y >= ceiling) continue;
      area += (reference[0] - x) * (ceiling - y);
      ceiling = y;
    }
    return area;
  }

  // 3-D: sweep up coordinate 0; between consecutive rows the cross-section is
  // the area dominated by the rows seen so far, a 2-D staircase in coordinates
  // 1 and 2 whose area grows by each row's newly covered region.
  double volume_sweep(const double* rows, size_t count, const double* reference) {
    staircase_.clear();
    double area = 0.0;
    double total = 0.0;
    double previous = rows[0];
    for (size_t i = 0; i < count; ++i) {
      const double* row = rows + 3 * i;
      total += area * (row[0] - previous);
      area += add_to_staircase(row[1], row[2], reference[1], reference[2]);
      previous = row[0];
    }
    return total + area * (reference[0] - previous);
  }

  // Adds (a, b) to the staircase (a ascending, b strictly descending, every
  // step non-dominated) and returns the area it newly covers up to (ra, rb).
  // Only additions of non-negative terms, so no cancellation.
  double add_to_staircase(double a, double b, double ra, double rb) {
    using Step = std::pair<double, double>;
    auto by_a = [](const Step& step, double value) { return step.first < value; };
    auto first = std::lower_bound(staircase_.begin(), staircase_.end(), a, by_a);  // first step with a' >= a
    // (a, b) is weakly dominated when the last step with a' <= a (the lowest
    // b' among those) has b' <= b. Steps have distinct a, so that step is
    // either at a itself or just before `first`.
    if (first != staircase_.end() && first->first == a) {
      if (first->second <= b) return 0.0;
    } else if (first != staircase_.begin() && std::prev(first)->second <= b) {
      return 0.0;
    }
    // From a rightwards, the staircase covers y >= height; walk the steps the
    // new point dominates (b' >= b), adding the uncovered part above b.
    double height = first == staircase_.begin() ? rb : std::prev(first)->second;
    double x = a;
    double added = 0.0;
    auto last = first;
    for (; last != staircase_.end() && last->second >= b; ++last) {
      added += (last->first - x) * (height - b);
      x = last->first;
      height = last->second;
    }
    const double right = last == staircase_.end() ? ra : last->first;
    added += (right - x) * (height - b);
    // The dominated steps [first, last) are contiguous: replace them by (a, b).
    if (first == last) {
      staircase_.insert(first, Step{a, b});
    } else {
      *first = Step{a, b};
      staircase_.erase(first + 1, last);
    }
    return added;
  }

  // d >= 4: slice along coordinate 0 (as in HSO), computing each row's
  // exclusive contribution as in WFG. With rows ascending in coordinate 0,
  //   volume = sum_i (r0 - p_i[0]) * exclusive_i,
  // where exclusive_i is the (d-1)-volume of p_i's box that the earlier rows'
  // projections do not cover. That is p_i's box minus the volume of the
  // earlier rows limited to it (max with p_i), a smaller problem one
  // dimension down, kept small by dropping its dominated rows.
  double volume_slices(size_t depth, const double* rows, size_t count, size_t dims, const double* reference) {
    const size_t sub = dims - 1;
    double total = 0.0;
    for (size_t i = 0; i < count; ++i) {
      const double* point = rows + i * dims;
      double box = 1.0;
      for (size_t k = 1; k < dims; ++k) box *= reference[k] - point[k];

      Level& next = levels_[depth + 1];
      next.raw.resize(i * sub);
      bool covered = false;  // an earlier row covers the whole box
      for (size_t j = 0; j < i && !covered; ++j) {
        const double* other = rows + j * dims;
        double* limited = next.raw.data() + j * sub;
        bool weakly_dominates = true;
        for (size_t k = 1; k < dims; ++k) {
          limited[k - 1] = std::max(other[k], point[k]);
          weakly_dominates = weakly_dominates && other[k] <= point[k];
        }
        covered = weakly_dominates;
      }
      if (covered) continue;
      const size_t kept = keep_nondominated(next, i, sub);
      // Rounding can leave a hair below zero where the box is all covered.
      const double exclusive = std::max(0.0, box - volume(depth + 1, next.kept.data(), kept, sub));
      total += (reference[0] - point[0]) * exclusive;
    }
    return total;
  }

  const ObjectivePoint& reference_;
  size_t dims_;
  std::vector<Level> levels_;
  std::vector<std::pair<double, double>> staircase_;
};

}  // namespace

bool dominates(const ObjectivePoint& a, const ObjectivePoint& b) {
  if (a.size() != b.size()) {
    throw std::invalid_argument("dominates: points have " + std::to_string(a.size()) + " and " +
                                std::to_string(b.size()) + " objectives");
  }
  return dominates_unchecked(a, b);
}

std::vector<int> nondominated_ranks(const std::vector<ObjectivePoint>& points) {
  const size_t n = points.size();
  std::vector<int> rank(n, -1);
  if (n == 0) return rank;
  check_dimensions(points, points[0].size(), "nondominated_ranks");

  // Deb's fast non-dominated sort, with O(N) memory: count each point's
  // dominators, then peel fronts. Instead of storing every point's dominated
  // set (O(N^2) memory) the peeling re-tests dominance; each point is peeled
  // once, so that is another O(M N^2).
  std::vector<size_t> dominators(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      switch (compare(points[i], points[j])) {
        case Relation::first_dominates: ++dominators[j]; break;
        case Relation::second_dominates: ++dominators[i]; break;
        case Relation::neither: break;
      }
    }
  }
  std::vector<size_t> current;
  std::vector<size_t> next;
  for (size_t i = 0; i < n; ++i) {
    if (dominators[i] == 0) {
      rank[i] = 0;
      current.push_back(i);
    }
  }
  for (int front = 0; !current.empty(); ++front) {
    next.clear();
    for (size_t p : current) {
      for (size_t q = 0; q < n; ++q) {
        // A ranked point cannot be dominated by p: its count reached zero
        // only after all its dominators were peeled.
        if (rank[q] != -1 || !dominates_unchecked(points[p], points[q])) continue;
        if (--dominators[q] == 0) {
          rank[q] = front + 1;
          next.push_back(q);
        }
      }
    }
    std::swap(current, next);
  }
  return rank;
}

std::vector<size_t> pareto_front(const std::vector<ObjectivePoint>& points) {
  std::vector<size_t> front;
  if (points.empty()) return front;
  const size_t dims = points[0].size();
  check_dimensions(points, dims, "pareto_front");

  // dominates_unchecked skips NaN coordinates, which no sort order can mirror;
  // such inputs keep the all-pairs test, which defines the result.
  const bool any_nan = std::any_of(points.begin(), points.end(), [](const ObjectivePoint& point) {
    return std::any_of(point.begin(), point.end(), [](double value) { return std::isnan(value); });
  });
  if (any_nan || dims == 0) {
    for (size_t i = 0; i < points.size(); ++i) {
      bool dominated = false;
      for (size_t j = 0; j < points.size() && !dominated; ++j) dominated = dominates_unchecked(points[j], points[i]);
      if (!dominated) front.push_back(i);
    }
    return front;
  }

  // A dominating point is no larger in every objective and differs, so it
  // comes earlier in lexicographic order: one pass in that order, testing each
  // point against the front found so far, decides every point. (A point
  // dominated by a non-front point is also dominated by whatever front point
  // dominates that one.) Exact duplicates never dominate each other.
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const ObjectivePoint& pa = points[a];
    const ObjectivePoint& pb = points[b];
    for (size_t k = 0; k < dims; ++k) {
      if (pa[k] != pb[k]) return pa[k] < pb[k];
    }
    return a < b;
  });

  if (dims == 2) {
    // Sweep: a point is dominated exactly when an earlier point that is not
    // its duplicate has a y no larger; the earlier duplicates share its fate.
    double lowest_y = kInfinity;  // lowest y of the points before the current group of duplicates
    bool any_before = false;
    for (size_t begin = 0; begin < order.size();) {
      const ObjectivePoint& point = points[order[begin]];
      size_t end = begin + 1;
      while (end < order.size() && points[order[end]] == point) ++end;
      if (!any_before || lowest_y > point[1]) {
        front.insert(front.end(), order.begin() + static_cast<std::ptrdiff_t>(begin),
                     order.begin() + static_cast<std::ptrdiff_t>(end));
      }
      lowest_y = std::min(lowest_y, point[1]);
      any_before = true;
      begin = end;
    }
  } else {
    // The front so far, row-major, for cache-friendly scans.
    std::vector<double> kept;
    for (size_t index : order) {
      const ObjectivePoint& point = points[index];
      bool dominated = false;
      for (size_t row = 0; row < kept.size() && !dominated; row += dims) {
        bool no_worse = true;
        bool better = false;
        for (size_t k = 0; k < dims && no_worse; ++k) {
          no_worse = kept[row + k] <= point[k];
          better = better || kept[row + k] < point[k];
        }
        dominated = no_worse && better;
      }
      if (dominated) continue;
      kept.insert(kept.end(), point.begin(), point.end());
      front.push_back(index);
    }
  }
  std::sort(front.begin(), front.end());
  return front;
}

std::vector<double> crowding_distances(const std::vector<ObjectivePoint>& points, const std::vector<int>& ranks) {
  const size_t n = points.size();
  if (ranks.size() != n) {
    throw std::invalid_argument("crowding_distances: " + std::to_string(ranks.size()) + " ranks for " +
                                std::to_string(n) + " points");
  }
  std::vector<double> distance(n, 0.0);
  if (n == 0) return distance;
  const size_t dims = points[0].size();
  check_dimensions(points, dims, "crowding_distances");
  check_no_nan(points, "crowding_distances");

  // Group the points by rank; within a group, ties in an objective are broken
  // by index so the result never depends on the sort algorithm.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranks[a] < ranks[b]; });
  std::vector<size_t> front;
  for (size_t begin = 0; begin < n;) {
    size_t end = begin;
    while (end < n && ranks[order[end]] == ranks[order[begin]]) ++end;
    front.assign(order.begin() + static_cast<std::ptrdiff_t>(begin), order.begin() + static_cast<std::ptrdiff_t>(end));
    begin = end;

    // One or two points are each an extreme of every objective.
    if (front.size() <= 2) {
      for (size_t i : front) distance[i] = kInfinity;
      continue;
    }
    for (size_t k = 0; k < dims; ++k) {
      std::sort(front.begin(), front.end(), [&](size_t a, size_t b) {
        return points[a][k] != points[b][k] ? points[a][k] < points[b][k] : a < b;
      });
      const double low = points[front.front()][k];
      const double high = points[front.back()][k];
      // Every point ties in this objective: it neither separates them nor
      // has extremes worth keeping.
      if (!(high > low)) continue;
      distance[front.front()] = kInfinity;
      distance[front.back()] = kInfinity;
      const double range = high - low;
      for (size_t t = 1; t + 1 < front.size(); ++t) {
        distance[front[t]] += (points[front[t + 1]][k] - points[front[t - 1]][k]) / range;
      }
    }
  }
  return distance;
}

double hypervolume(const std::vector<ObjectivePoint>& points, const ObjectivePoint& reference) {
  if (reference.empty()) throw std::invalid_argument("hypervolume: the reference point has no objectives");
  for (double value : reference) {
    if (!std::isfinite(value)) throw std::invalid_argument("hypervolume: the reference point is not finite");
  }
  check_dimensions(points, reference.size(), "hypervolume");
  return Hypervolume(reference)(points);
}

size_t knee_point(const std::vector<ObjectivePoint>& front) {
  if (front.empty()) throw std::invalid_argument("knee_point: the front is empty");
  const size_t dims = front[0].size();
  check_dimensions(front, dims, "knee_point");
  check_no_nan(front, "knee_point");

  std::vector<double> low(front[0]);
  std::vector<double> high(front[0]);
  for (const ObjectivePoint& point : front) {
    for (size_t k = 0; k < dims; ++k) {
      low[k] = std::min(low[k], point[k]);
      high[k] = std::max(high[k], point[k]);
    }
  }
  // Squared distances order the points as distances do, without the sqrt.
  auto distance_to_ideal = [&](const ObjectivePoint& point) {
    double sum = 0.0;
    for (size_t k = 0; k < dims; ++k) {
      if (!(high[k] > low[k])) continue;  // no spread: normalizes to 0
      const double normalized = (point[k] - low[k]) / (high[k] - low[k]);
      sum += normalized * normalized;
    }
    return sum;
  };
  size_t best = 0;
  double best_distance = distance_to_ideal(front[0]);
  for (size_t i = 1; i < front.size(); ++i) {
    const double d = distance_to_ideal(front[i]);
    if (d < best_distance) {  // strict: ties keep the lower index
      best = i;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace memfront
