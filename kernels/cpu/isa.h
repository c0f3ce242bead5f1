#pragma once
// Which instruction sets the hand-written CPU kernels are compiled for
// (CMake option MEMFRONT_CPU_ISA, kernels/CMakeLists.txt):
// - dispatch (default): every kernel marked MEMFRONT_CPU_KERNEL is compiled
//   three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2, FMA) and the
//   baseline x86-64 (SSE2), and the C library's loader picks the best one the
//   CPU it runs on has (GCC target_clones, an ifunc resolved once at start).
//   So the build machine's instruction set is used where the binary was built,
//   and the same binary runs on any x86-64 machine: a cluster's compute nodes,
//   or the GPU host that scripts/gpu-prepare.sh ships the build to.
// - native: the kernels are built with -march=native, one version, for
//   machines identical to the build machine.
// - baseline: the compiler's default target only.
// The helpers such kernels call are always inlined, so that they are compiled
// for the kernel's instruction set too.
//
// The kernels' files are compiled with -ffp-contract=off: no clone fuses a
// multiply and an add into one FMA instruction, so every clone (and the
// baseline) gives the same bits, and a trial's losses do not depend on the
// machine it ran on.
#if defined(MEMFRONT_CPU_DISPATCH) && defined(__x86_64__) && defined(__GNUC__)
#define MEMFRONT_CPU_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MEMFRONT_CPU_KERNEL
#endif
#define MEMFRONT_CPU_INLINE [[gnu::always_inline]] inline
