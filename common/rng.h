// Counter-based randomness (Philox4x32-10): every random number is a pure function of
// (seed, step, position, index, stream), so a request's draws never depend on its batch mates.
#pragma once

#include <array>
#include <cstdint>

namespace sculpt {

// Independent streams of draws that share a (seed, step, position) key.
enum class RngStream : uint32_t {
  kGumbel = 0,           // per-vocabulary-entry noise for sampling at temperature > 0
  kRandomRemasking = 1,  // per-position confidence of `remasking=random`
  kDreamSample = 2,      // per-vocabulary-entry noise of Dream-style categorical sampling
  kOriginTransfer = 3,   // per-position coin of `remasking=origin`
  kAlgTemp = 4,          // per-position noise of Dream's alg_temp position sampling
};

// Philox4x32 with 10 rounds (Salmon et al., SC'11; the Random123 reference constants).
std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// A double uniform in the open interval (0, 1), built from 53 bits of one Philox block whose
// counter is (position, step, index, stream) and key is the 64-bit seed split low/high.
double UniformOpen01(uint64_t seed, uint32_t step, uint32_t position, uint32_t index,
                     RngStream stream);

}  // namespace sculpt
