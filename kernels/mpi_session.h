#pragma once
// MpiSession: MPI's lifetime for one process (a trial rank, a test, a
// benchmark). It initializes MPI unless something else already did, and
// finalizes it only if it was the one to initialize it.
#include <string>
#include <vector>

namespace memfront {

class MpiSession {
 public:
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const;   // in MPI_COMM_WORLD
  int world() const;  // size of MPI_COMM_WORLD
  // First line of MPI_Get_library_version, e.g. "Open MPI v4.1.4, package: ...".
  std::string library_version() const;

  // Waits until every rank of the job gets here.
  void barrier() const;

  // Ends every rank of the job (MPI_Abort on MPI_COMM_WORLD) with exit status `code`.
  [[noreturn]] static void abort(int code);

 private:
  bool initialized_here_ = false;
};

// Node index of every world rank, as MPI sees the machines: ranks that share
// memory (MPI_Comm_split_type, MPI_COMM_TYPE_SHARED) are on one node, and nodes
// are numbered 0, 1, ... in the order of their lowest world rank. Collective
// over MPI_COMM_WORLD: every rank must call it.
std::vector<int> detect_physical_nodes();

// This rank's position among the job's ranks on its machine, and how many
// they are (0 of 1 when MPI is not initialized): which of the machine's GPUs
// and cores it uses. Collective over MPI_COMM_WORLD.
struct NodePlace {
  int local_rank = 0;
  int local_ranks = 1;
};
NodePlace node_place();

// Every rank's text, on every rank, in rank order. Collective over
// MPI_COMM_WORLD. It moves a trial's results and traces after the measured
// part, in host memory outside any arena, so it works whatever the backend's
// memory and never counts against the emulated device. Sent in rounds of at
// most 1 MiB per rank.
std::vector<std::string> all_gather_text(const std::string& text);

}  // namespace memfront
