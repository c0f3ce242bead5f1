#pragma once
// Pareto fronts and hypervolume, for any number of objectives. Every function
// takes points to MINIMIZE (negate an objective to maximize it).
#include <cstddef>
#include <vector>

namespace memfront {

using ObjectivePoint = std::vector<double>;

// True when a is no worse than b in every objective and better in at least one.
bool dominates(const ObjectivePoint& a, const ObjectivePoint& b);

// Non-dominated sorting (Deb et al., NSGA-II): rank[i] = 0 for the points no
// other point dominates, 1 for those dominated only by rank-0 points, and so on.
std::vector<int> nondominated_ranks(const std::vector<ObjectivePoint>& points);

// Indices of the rank-0 points (the Pareto front), ascending.
std::vector<size_t> pareto_front(const std::vector<ObjectivePoint>& points);

// Crowding distance of each point within its own front (NSGA-II): infinite at
// the extremes of any objective that varies within the front, otherwise the
// sum over objectives of the normalized gap between its neighbours.
std::vector<double> crowding_distances(const std::vector<ObjectivePoint>& points, const std::vector<int>& ranks);

// The volume dominated by the points and bounded by `reference` (each point's
// box [point, reference]); points not strictly better than the reference in
// every objective add nothing. Exact for any number of objectives: sweeps for
// 2 and 3; for more, slicing along the first objective with each point's
// exclusive contribution computed one dimension down (as in WFG).
double hypervolume(const std::vector<ObjectivePoint>& points, const ObjectivePoint& reference);

// The knee of a front: after normalizing each objective to [0, 1] over the
// front (an objective with no spread normalizes to 0), the point nearest the
// ideal point (every objective at its best), by Euclidean distance; ties go to
// the lower index. Returns an index into front.
size_t knee_point(const std::vector<ObjectivePoint>& front);

}  // namespace memfront
