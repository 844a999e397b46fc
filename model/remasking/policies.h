// The remasking policies (one .cc each); obtain them through GetRemaskingPolicy().
#pragma once

#include "model/remasking/remasking.h"

namespace sculpt {

class LowConfidenceRemasking final : public RemaskingPolicy {
 public:
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kLLaDA; }
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
};

class RandomRemasking final : public RemaskingPolicy {
 public:
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kLLaDA; }
  void Score(const SelectionContext& context, std::span<const int32_t> positions,
             std::span<const double> confidences, std::span<double> scores) const override;
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
};

class ThresholdRemasking final : public RemaskingPolicy {
 public:
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kLLaDA; }
  bool fixed_steps() const override { return false; }
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
};

class FactorRemasking final : public RemaskingPolicy {
 public:
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kLLaDA; }
  bool fixed_steps() const override { return false; }
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
};

class OriginRemasking final : public RemaskingPolicy {
 public:
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kDream; }
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
};

class DreamConfidenceRemasking final : public RemaskingPolicy {
 public:
  explicit DreamConfidenceRemasking(ConfidenceKind kind) : kind_(kind) {}
  TokenChoiceStyle style() const override { return TokenChoiceStyle::kDream; }
  ConfidenceKind confidence_kind() const override { return kind_; }
  std::vector<size_t> Select(const SelectionContext& context, std::span<const int32_t> positions,
                             std::span<const double> scores) const override;
  std::vector<size_t> SelectCount(const SelectionContext& context,
                                  std::span<const int32_t> positions,
                                  std::span<const double> scores, size_t count) const override;

 private:
  ConfidenceKind kind_;
};

}  // namespace sculpt
