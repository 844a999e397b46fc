// Thread count of the CPU backend: one OpenMP pool runs our loops and hands out GEMM and
// attention tiles (oneDNN runs each tile on the thread that takes it).
#pragma once

namespace sculpt {

// n <= 0 keeps OpenMP's default (all cores). For the process: every thread that runs the CPU
// backend's ops applies it (ApplyCpuThreads) before its first parallel region.
void SetCpuThreads(int n);
// Applies the count to the calling thread, once (the CPU backend calls it as a forward and a
// token choice start).
void ApplyCpuThreads();
int CpuThreads();

}  // namespace sculpt
