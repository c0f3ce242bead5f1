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

// The hwloc plugins that Open MPI's topology discovery in MPI_Init loads and
// runs for nothing on ranks of one machine (environment variable, value): the
// display probe (it tries to connect to X servers :0 to :9), OpenCL, PCI
// devices through libpciaccess, and the libxml2 XML backend (hwloc's own XML
// parser remains). Skipping them took MPI_Init of a one-rank trial from 27 to
// 21 ms of CPU here. Set for a one-rank trial started without mpirun
// (kernels/mpi_session.cpp), and for mpirun by the local launcher
// (tuner/launcher.cpp), unless the environment sets it already.
inline constexpr std::pair<const char*, const char*> kLocalHwlocPlugins = {
    "HWLOC_PLUGINS_BLACKLIST", "hwloc_gl,hwloc_opencl,hwloc_pci,hwloc_xml_libxml"};

}  // namespace memfront
