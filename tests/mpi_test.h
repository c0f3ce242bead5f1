#pragma once
// For the tests that run under mpirun (main in mpi_test_main.cpp): this
// process's place in MPI_COMM_WORLD.
#include <mpi.h>

namespace memfront::testing_mpi {

inline int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

inline int rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

}  // namespace memfront::testing_mpi
