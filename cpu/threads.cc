#include "cpu/threads.h"

#include <omp.h>

namespace sculpt {

void SetCpuThreads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int CpuThreads() { return omp_get_max_threads(); }

}  // namespace sculpt
