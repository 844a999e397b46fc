// The CPU backend: fp32 weights, OpenBLAS sgemm and OpenMP loops. It is the reference every
// other backend is tested against.
#pragma once

#include <memory>

#include "model/backend.h"

namespace sculpt {

std::unique_ptr<Backend> MakeCpuBackend();

}  // namespace sculpt
