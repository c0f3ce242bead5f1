#pragma once
// The NCCL communicator: comm.h's collectives on device memory, queued by NCCL
// on the compute backend's CUDA stream. Built only with CUDA
// (MEMFRONT_HAVE_CUDA).
//
// Every pointer passed in is device memory of the calling rank's current CUDA
// device, and so is every Buffer handed back (they come from the arena, whose
// memory is the CUDA backend's). Each collective returns once its result is in
// place: it queues NCCL's kernels behind the work already on the stream, then
// polls the stream until they are done.
//
// Groups. The world group uses the communicator built at construction. Any
// other group gets its own NCCL communicator the first time it is used, kept
// for later calls and keyed by its member list (the ring order, which is also
// its NCCL rank order). Creating it involves only the group's members: its
// first member makes an ncclUniqueId and sends it to the others over MPI.
// (ncclCommSplit would need every rank of the world to take part, but
// comm.h's collectives on a group are called by its members alone.)
//
// Uneven partitions. Where every shard has the same size, reduce-scatter and
// all-gather are ncclReduceScatter and ncclAllGather. Otherwise they are one
// NCCL group of per-shard operations: an ncclReduce of shard i to member i, or
// an ncclBroadcast of shard i from member i. all_reduce_sum is ncclAllReduce:
// its sums are deterministic from run to run, but NCCL adds in its own order,
// so its bits may differ from reduce_scatter_sum + all_gather (comm.h promises
// that agreement for memfront's own rings only).
//
// Hierarchical. Inside each node the group's members there (by ascending rank,
// the lowest being the node's leader) form one communicator, the leaders
// another: sums are reduced to the leader, all-reduced among leaders and
// broadcast back inside the node; all-gathers go the other way.
//
// Bytes. NCCL reports none, so the counters hold what NCCL's ring algorithms
// send (counters().by_formula is true), by the ring formulas of
// core/closed_forms.h (namespace ring, which the cost model predicts with): the
// ring runs in group order and every member sends to its successor only, so a
// member's bytes are intra-node when its successor shares its node and
// inter-node otherwise. NCCL may choose another ring order or another
// algorithm (tree, NVLS); the counts describe the ring. Payloads of
// all_gather_bytes and all_to_all_bytes go point to point and are counted
// exactly per peer. Virtual nodes (placement on one host) only split these
// counts: NCCL moves the bytes itself and nothing is delayed, so the
// communicator's topology says emulated = false.
//
// Timeouts. Communicators are non-blocking (ncclConfig_t::blocking = 0). Every
// wait (communicator creation, a collective's completion) polls NCCL's state
// and the stream until `timeout` has passed; then every NCCL communicator of
// this object is aborted (ncclCommAbort) and CommTimeout names the collective.
// After that, or after any NCCL error, further calls throw at once.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/closed_forms.h"
#include "core/topology.h"
#include "kernels/comm.h"

namespace memfront {

// MPI must be initialized. Bootstraps ncclUniqueId through MPI_Bcast from
// world rank 0; collective over MPI_COMM_WORLD like make_mpi_communicator
// (when MPI finds ranks on several machines, the real nodes replace
// `topology`'s). cuda_stream is the cudaStream_t of the compute backend
// (Ops::native_stream()); NCCL uses the calling thread's current device.
std::unique_ptr<Communicator> make_nccl_communicator(const Topology& topology, Arena& arena,
                                                     std::chrono::milliseconds timeout, void* cuda_stream);

}  // namespace memfront
