#include "kernels/mpi_session.h"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/local_mpi.h"

namespace memfront {

namespace {

// Whether a launcher (mpirun, srun, a PMI server) started this process as one
// rank of several; otherwise MPI_Init makes it a singleton world of one.
bool started_by_a_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID"}) {
    if (std::getenv(variable) != nullptr) return true;
  }
  return false;
}

}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
  int already_initialized = 0;
  MPI_Initialized(&already_initialized);
  if (!already_initialized) {
    // A singleton (a one-rank trial, which the local launcher starts without
    // mpirun) would have Open MPI fork a daemon and probe every transport it
    // was built with: 0.5 s of a one-rank trial's 1 s here. One process needs
    // neither. The launcher's mpirun line chooses the same transports
    // (core/local_mpi.h); a variable already set stands.
    if (!started_by_a_launcher()) {
      setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
      for (const auto& [parameter, value] : kLocalMpiTransports) {
        setenv(("OMPI_MCA_" + std::string(parameter)).c_str(), value, 0);
      }
      setenv(kLocalHwlocPlugins.first, kLocalHwlocPlugins.second, 0);
    }
    MPI_Init(&argc, &argv);
    initialized_here_ = true;
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (initialized_here_ && !finalized) MPI_Finalize();
}

int MpiSession::rank() const {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int MpiSession::world() const {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

void MpiSession::barrier() const { MPI_Barrier(MPI_COMM_WORLD); }

std::string MpiSession::library_version() const {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string version(text, static_cast<size_t>(length));
  return version.substr(0, version.find('\n'));
}

void MpiSession::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return in practice; this keeps [[noreturn]] true if it does
}

std::vector<int> detect_physical_nodes() {
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);

  // Key 0 on every rank keeps world order inside each node, so local rank 0 is
  // the node's lowest world rank.
  MPI_Comm node_comm = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_comm);
  int lowest_rank_on_my_node = rank;
  MPI_Bcast(&lowest_rank_on_my_node, 1, MPI_INT, 0, node_comm);
  MPI_Comm_free(&node_comm);

  std::vector<int> lowest_rank_of(static_cast<size_t>(world));
  MPI_Allgather(&lowest_rank_on_my_node, 1, MPI_INT, lowest_rank_of.data(), 1, MPI_INT, MPI_COMM_WORLD);

  // A node's lowest rank is where it first appears in world order, so numbering
  // the distinct values in ascending order numbers the nodes by it.
  std::vector<int> lowest_ranks = lowest_rank_of;
  std::sort(lowest_ranks.begin(), lowest_ranks.end());
  lowest_ranks.erase(std::unique(lowest_ranks.begin(), lowest_ranks.end()), lowest_ranks.end());
  std::vector<int> node_of_rank(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    node_of_rank[r] = static_cast<int>(std::lower_bound(lowest_ranks.begin(), lowest_ranks.end(), lowest_rank_of[r]) -
                                       lowest_ranks.begin());
  }
  return node_of_rank;
}

NodePlace node_place() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return {};
  MPI_Comm node_comm = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_comm);
  NodePlace place;
  MPI_Comm_rank(node_comm, &place.local_rank);
  MPI_Comm_size(node_comm, &place.local_ranks);
  MPI_Comm_free(&node_comm);
  return place;
}

std::vector<std::string> all_gather_text(const std::string& text) {
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  // Rounds of at most 1 MiB per rank keep every count and displacement well
  // inside MPI's int range, whatever the size of a trace.
  constexpr uint64_t kChunkBytes = uint64_t(1) << 20;
  const uint64_t size = text.size();
  std::vector<uint64_t> sizes(static_cast<size_t>(world));
  MPI_Allgather(&size, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  const uint64_t longest = *std::max_element(sizes.begin(), sizes.end());
  const uint64_t rounds = (longest + kChunkBytes - 1) / kChunkBytes;

  std::vector<std::string> all(static_cast<size_t>(world));
  std::vector<int> counts(static_cast<size_t>(world)), displacements(static_cast<size_t>(world));
  std::vector<char> received;
  for (uint64_t round = 0; round < rounds; ++round) {
    const uint64_t begin = round * kChunkBytes;
    int total = 0;
    for (int r = 0; r < world; ++r) {
      counts[r] = static_cast<int>(std::min(kChunkBytes, sizes[r] - std::min<uint64_t>(sizes[r], begin)));
      displacements[r] = total;
      total += counts[r];
    }
    received.resize(static_cast<size_t>(total));
    const uint64_t my_begin = std::min<uint64_t>(size, begin);
    const int my_count = static_cast<int>(std::min(kChunkBytes, size - my_begin));
    MPI_Allgatherv(text.data() + my_begin, my_count, MPI_CHAR, received.data(), counts.data(), displacements.data(),
                   MPI_CHAR, MPI_COMM_WORLD);
    for (int r = 0; r < world; ++r) all[r].append(received.data() + displacements[r], counts[r]);
  }
  return all;
}

}  // namespace memfront
