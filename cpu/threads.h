// Thread counts of the CPU backend's two pools (OpenMP loops and OpenBLAS GEMMs).
#pragma once

namespace sculpt {

// n <= 0 keeps the libraries' defaults (all cores).
void SetCpuThreads(int n);
int CpuThreads();

}  // namespace sculpt
