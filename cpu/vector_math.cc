// Compiled with -fno-math-errno (CMakeLists.txt): errno is what keeps the compiler from calling
// libmvec's vector exp; nothing here reads it.
#include "cpu/vector_math.h"

#include <algorithm>
#include <cmath>

// glibc declares these vector variants only under -ffast-math (math-vector.h); declared here so
// that strict IEEE arithmetic is kept everywhere else.
extern "C" {
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
}

// One clone per ISA level, picked at load time by the CPU's features.
#define SCULPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace sculpt::cpu {

SCULPT_CLONES float ExpShiftedInPlace(float* x, int64_t n, float shift) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    x[i] = expf(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

SCULPT_CLONES float MaxOf(const float* x, int64_t n) {
  // Lane-wise maxima, in the form (a > b ? a : b) that is one vector max instruction: the
  // compiler keeps scalar code for a plain max reduction, which must order NaNs.
  constexpr int64_t kLanes = 16;
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, x[0]);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int64_t lane = 0; lane < kLanes; ++lane) {
      lanes[lane] = lanes[lane] > x[i + lane] ? lanes[lane] : x[i + lane];
    }
  }
  float largest = lanes[0];
  for (int64_t lane = 1; lane < kLanes; ++lane) largest = std::max(largest, lanes[lane]);
  for (; i < n; ++i) largest = std::max(largest, x[i]);
  return largest;
}

SCULPT_CLONES void SiluMultiply(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

SCULPT_CLONES double SumExpShifted(const float* x, int64_t n, double shift) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += exp(static_cast<double>(x[i]) - shift);
  return sum;
}

}  // namespace sculpt::cpu
