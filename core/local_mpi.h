#pragma once
// How memfront starts Open MPI for ranks that share one machine: the facts
// that the local launcher's mpirun line (tuner/launcher.cpp) and a one-rank
// trial started without mpirun (kernels/mpi_session.cpp) both need.
#include <utility>

namespace memfront {

// The transports (MCA parameter, value) for ranks on one machine: the ob1
// point-to-point layer over shared memory (vader) and self. Open MPI's default
// start-up opens every transport it was built with (UCX, OFI, ...) to see
// which work, which took MPI_Init 0.3-0.4 s of a trial on a machine with none
// of them. Each is left to the study (mpirun_args) or the environment
// (OMPI_MCA_<name>) when either sets it.
inline constexpr std::pair<const char*, const char*> kLocalMpiTransports[] = {{"pml", "ob1"}, {"btl", "self,vader"}};

}  // namespace memfront
