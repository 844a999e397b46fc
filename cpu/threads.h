// Thread count of the CPU backend: one OpenMP pool runs our loops and hands out GEMM and
// attention tiles (oneDNN runs each tile on the thread that takes it).
#pragma once

namespace sculpt {

// n <= 0 keeps OpenMP's default (all cores).
void SetCpuThreads(int n);
int CpuThreads();

}  // namespace sculpt
