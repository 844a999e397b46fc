// Conversions of common/dtype.h checked against independent definitions of the formats:
// every F16 and BF16 bit pattern decoded, fp32 -> bf16 rounding checked against nearest-even.
#include "common/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace sculpt {
namespace {

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// binary16 from its definition: (-1)^s x 2^(e-15) x 1.m, or 2^-14 x 0.m when e == 0.
double ReferenceF16(uint16_t bits) {
  const int sign = (bits >> 15) ? -1 : 1;
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  if (exponent == 0x1f) {
    return mantissa == 0 ? sign * std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::quiet_NaN();
  }
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// The bf16 nearest to a finite `value`, ties to the even pattern, from the distances in double.
uint16_t ReferenceBF16(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint16_t below = static_cast<uint16_t>((bits >> 16) & 0x7fffu);  // magnitude, truncated
  const uint16_t above = static_cast<uint16_t>(below + 1);
  const double magnitude = std::fabs(static_cast<double>(value));
  const double low = BF16ToFloat(below);
  // Past the largest finite bf16 the next step is 2^128, which rounds to infinity.
  const double high = above == 0x7f80 ? std::ldexp(1.0, 128) : BF16ToFloat(above);
  const double to_low = magnitude - low;
  const double to_high = high - magnitude;
  uint16_t nearest;
  if (to_low < to_high) {
    nearest = below;
  } else if (to_high < to_low) {
    nearest = above;
  } else {
    nearest = (below & 1) == 0 ? below : above;
  }
  return static_cast<uint16_t>(sign | nearest);
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeName(DType::kF32), "F32");
  EXPECT_EQ(DTypeName(DType::kF16), "F16");
  EXPECT_EQ(DTypeName(DType::kBF16), "BF16");
}

TEST(DTypeTest, F16NamedValues) {
  EXPECT_EQ(F16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(F16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(F16ToFloat(0x7bff), 65504.0f);         // largest finite
  EXPECT_EQ(F16ToFloat(0x0400), 0x1p-14f);         // smallest normal
  EXPECT_EQ(F16ToFloat(0x0001), 0x1p-24f);         // smallest subnormal
  EXPECT_EQ(F16ToFloat(0x8001), -0x1p-24f);        // negative subnormal
  EXPECT_EQ(F16ToFloat(0x03ff), 1023 * 0x1p-24f);  // largest subnormal
  EXPECT_EQ(F16ToFloat(0x0200), 0x1p-15f);
  EXPECT_EQ(F16ToFloat(0x3555), 0.333251953125f);
}

TEST(DTypeTest, F16SignedZeros) {
  EXPECT_EQ(FloatBits(F16ToFloat(0x0000)), 0x00000000u);
  EXPECT_EQ(FloatBits(F16ToFloat(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::signbit(F16ToFloat(0x8000)));
}

TEST(DTypeTest, F16InfinityAndNaN) {
  EXPECT_EQ(F16ToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToFloat(0x7e00)));  // quiet NaN
  EXPECT_TRUE(std::isnan(F16ToFloat(0x7c01)));  // signalling NaN must not become infinity
  EXPECT_TRUE(std::isnan(F16ToFloat(0xffff)));
  EXPECT_TRUE(std::signbit(F16ToFloat(0xfe00)));
}

TEST(DTypeTest, F16EveryBitPatternMatchesDefinition) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const uint16_t half = static_cast<uint16_t>(bits);
    const float got = F16ToFloat(half);
    const double want = ReferenceF16(half);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << std::hex << bits;
    } else {
      EXPECT_EQ(static_cast<double>(got), want) << std::hex << bits;
      EXPECT_EQ(std::signbit(got), (bits & 0x8000) != 0) << std::hex << bits;
    }
  }
}

TEST(DTypeTest, BF16DecodesAsUpperHalfOfFloat) {
  EXPECT_EQ(BF16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BF16ToFloat(0xbf80), -1.0f);
  EXPECT_EQ(BF16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(FloatBits(BF16ToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(BF16ToFloat(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(BF16ToFloat(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(BF16ToFloat(0x7fc0)));
  EXPECT_EQ(BF16ToFloat(0x0001), BitsToFloat(0x00010000u));  // subnormal
}

TEST(DTypeTest, FloatToBF16RoundsToNearestEvenOnTies) {
  // 1 + 2^-8 lies halfway between 0x3f80 (1.0) and 0x3f81; the even one wins.
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x3f808000u)), 0x3f80);
  // Halfway between 0x3f81 and 0x3f82: rounds up to the even 0x3f82.
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x3f818000u)), 0x3f82);
  EXPECT_EQ(FloatToBF16(BitsToFloat(0xbf808000u)), 0xbf80);
  EXPECT_EQ(FloatToBF16(BitsToFloat(0xbf818000u)), 0xbf82);
  // Just off the tie, either way.
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x3f808001u)), 0x3f81);
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x3f807fffu)), 0x3f80);
  // A carry out of the mantissa moves to the next binade.
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x3fffc000u)), 0x4000);
  // Subnormal ties.
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x00008000u)), 0x0000);
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x00018000u)), 0x0002);
}

TEST(DTypeTest, FloatToBF16SpecialValues) {
  EXPECT_EQ(FloatToBF16(0.0f), 0x0000);
  EXPECT_EQ(FloatToBF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(FloatToBF16(-std::numeric_limits<float>::infinity()), 0xff80);
  // The largest floats round past the largest bf16 (0x7f7f) to infinity.
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBF16(BitsToFloat(0x7f7f7fffu)), 0x7f7f);
  // NaN stays NaN, even when only low mantissa bits are set (truncation would give infinity).
  for (uint32_t nan_bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    const uint16_t half = FloatToBF16(BitsToFloat(nan_bits));
    EXPECT_TRUE(std::isnan(BF16ToFloat(half))) << std::hex << nan_bits;
    EXPECT_EQ(half & 0x8000, (nan_bits >> 16) & 0x8000) << std::hex << nan_bits;
  }
}

TEST(DTypeTest, FloatToBF16MatchesNearestEvenAcrossTheRange) {
  // An odd stride reaches every low-half pattern somewhere in the range.
  for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 4099) {
    const float value = BitsToFloat(static_cast<uint32_t>(bits));
    if (std::isnan(value) || std::isinf(value)) continue;
    ASSERT_EQ(FloatToBF16(value), ReferenceBF16(value)) << std::hex << bits;
  }
  // Every tie, and its two neighbours, under every upper half.
  for (uint32_t upper = 0; upper <= 0xffff; ++upper) {
    for (uint32_t lower : {0x7fffu, 0x8000u, 0x8001u}) {
      const uint32_t bits = (upper << 16) | lower;
      const float value = BitsToFloat(bits);
      if (std::isnan(value) || std::isinf(value)) continue;
      ASSERT_EQ(FloatToBF16(value), ReferenceBF16(value)) << std::hex << bits;
    }
  }
}

TEST(DTypeTest, BF16RoundTripsEveryNonNaNPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const uint16_t half = static_cast<uint16_t>(bits);
    if (std::isnan(BF16ToFloat(half))) continue;
    EXPECT_EQ(FloatToBF16(BF16ToFloat(half)), half) << std::hex << bits;
  }
}

TEST(DTypeTest, ConvertToFloatFromUnalignedSource) {
  const std::vector<uint16_t> f16 = {0x3c00, 0x8001, 0x7c00, 0xc000, 0x0000};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x4049, 0xff80, 0x8000};
  const std::vector<float> f32 = {1.5f, -0.0f, 1e30f, -3.0f, 0x1p-140f};
  // Each source starts one byte into its buffer, as a tensor can in a checkpoint.
  std::vector<unsigned char> buffer(1 + f32.size() * sizeof(float));

  std::vector<float> out(5);
  std::memcpy(buffer.data() + 1, f16.data(), f16.size() * 2);
  ConvertToFloat(DType::kF16, buffer.data() + 1, f16.size(), out.data());
  for (size_t i = 0; i < f16.size(); ++i)
    EXPECT_EQ(FloatBits(out[i]), FloatBits(F16ToFloat(f16[i])));

  std::memcpy(buffer.data() + 1, bf16.data(), bf16.size() * 2);
  ConvertToFloat(DType::kBF16, buffer.data() + 1, bf16.size(), out.data());
  for (size_t i = 0; i < bf16.size(); ++i) {
    EXPECT_EQ(FloatBits(out[i]), FloatBits(BF16ToFloat(bf16[i])));
  }

  std::memcpy(buffer.data() + 1, f32.data(), f32.size() * 4);
  ConvertToFloat(DType::kF32, buffer.data() + 1, f32.size(), out.data());
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(FloatBits(out[i]), FloatBits(f32[i]));
}

TEST(DTypeTest, ConvertToFloatOfNothingWritesNothing) {
  const uint16_t source = 0x3c00;
  float out = 7.0f;
  ConvertToFloat(DType::kF16, &source, 0, &out);
  ConvertToFloat(DType::kBF16, &source, 0, &out);
  ConvertToFloat(DType::kF32, &source, 0, &out);
  EXPECT_EQ(out, 7.0f);
}

}  // namespace
}  // namespace sculpt
