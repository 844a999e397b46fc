// The host entry points of common/rng.h; the arithmetic lives in common/philox.h, which the CUDA
// kernels include too.
#include "common/rng.h"

#include "common/philox.h"

namespace sculpt {

std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  const PhiloxWords block =
      Philox4x32x10({{counter[0], counter[1], counter[2], counter[3]}}, key[0], key[1]);
  return {block.word[0], block.word[1], block.word[2], block.word[3]};
}

double UniformOpen01(uint64_t seed, uint32_t step, uint32_t position, uint32_t index,
                     RngStream stream) {
  return PhiloxUniformOpen01(seed, step, position, index, static_cast<uint32_t>(stream));
}

}  // namespace sculpt
