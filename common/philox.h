// Philox4x32-10 and the (0, 1) double built from one of its blocks, as inline functions that host
// and device code share: the CPU and CUDA backends draw bit-identical random numbers.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SCULPT_HOST_DEVICE __host__ __device__
#else
#define SCULPT_HOST_DEVICE
#endif

namespace sculpt {

// Four 32-bit words: a Philox counter going in, random bits coming out.
struct PhiloxWords {
  uint32_t word[4];
};

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // the Weyl sequence that bumps the key
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// Philox4x32 with 10 rounds (Salmon et al., SC'11; the Random123 reference constants).
SCULPT_HOST_DEVICE inline PhiloxWords Philox4x32x10(PhiloxWords counter, uint32_t key0,
                                                    uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t product0 = static_cast<uint64_t>(kPhiloxM0) * counter.word[0];
    const uint64_t product1 = static_cast<uint64_t>(kPhiloxM1) * counter.word[2];
    const uint32_t hi0 = static_cast<uint32_t>(product0 >> 32);
    const uint32_t lo0 = static_cast<uint32_t>(product0);
    const uint32_t hi1 = static_cast<uint32_t>(product1 >> 32);
    const uint32_t lo1 = static_cast<uint32_t>(product1);
    counter = {{hi1 ^ counter.word[1] ^ key0, lo1, hi0 ^ counter.word[3] ^ key1, lo0}};
    key0 += kPhiloxW0;
    key1 += kPhiloxW1;
  }
  return counter;
}

// A double uniform in (0, 1) from the top 53 bits of the block whose counter is
// (position, step, index, stream) and whose key is the 64-bit seed split low/high. `stream` is
// a RngStream (common/rng.h) as an integer.
SCULPT_HOST_DEVICE inline double PhiloxUniformOpen01(uint64_t seed, uint32_t step,
                                                     uint32_t position, uint32_t index,
                                                     uint32_t stream) {
  const PhiloxWords block =
      Philox4x32x10({{position, step, index, stream}}, static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(seed >> 32));
  const uint64_t bits53 = (static_cast<uint64_t>(block.word[0]) << 21) | (block.word[1] >> 11);
  return (static_cast<double>(bits53) + 0.5) * 0x1.0p-53;
}

}  // namespace sculpt
