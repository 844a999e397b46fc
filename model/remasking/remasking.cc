#include "model/remasking/remasking.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/remasking/policies.h"
#include "model/remasking/selection.h"

namespace sculpt {
namespace {

struct NamedPolicy {
  const char* name;
  Remasking remasking;
};

constexpr NamedPolicy kPolicies[] = {
    {"low_confidence", Remasking::kLowConfidence},
    {"random", Remasking::kRandom},
    {"threshold", Remasking::kThreshold},
    {"factor", Remasking::kFactor},
    {"origin", Remasking::kOrigin},
    {"maskgit_plus", Remasking::kMaskgitPlus},
    {"topk_margin", Remasking::kTopkMargin},
    {"entropy", Remasking::kEntropy},
};

}  // namespace

void RemaskingPolicy::Score(const SelectionContext& /*context*/,
                            std::span<const int32_t> /*positions*/,
                            std::span<const double> confidences, std::span<double> scores) const {
  std::copy(confidences.begin(), confidences.end(), scores.begin());
}

std::vector<size_t> RemaskingPolicy::SelectCount(const SelectionContext& /*context*/,
                                                 std::span<const int32_t> positions,
                                                 std::span<const double> scores,
                                                 size_t count) const {
  return TopK(positions, scores, count);
}

absl::StatusOr<Remasking> ParseRemasking(std::string_view name) {
  if (name == "margin") return Remasking::kTopkMargin;
  for (const NamedPolicy& policy : kPolicies) {
    if (name == policy.name) return policy.remasking;
  }
  return absl::InvalidArgumentError(absl::StrCat("remasking: unknown policy '", std::string(name),
                                                 "' (supported: ", std::string(RemaskingNames()),
                                                 ")"));
}

std::string_view RemaskingName(Remasking remasking) {
  for (const NamedPolicy& policy : kPolicies) {
    if (policy.remasking == remasking) return policy.name;
  }
  return "?";
}

std::string_view RemaskingNames() {
  return "low_confidence, random, threshold, factor, origin, maskgit_plus, topk_margin (margin), "
         "entropy";
}

const RemaskingPolicy& GetRemaskingPolicy(Remasking remasking) {
  static const LowConfidenceRemasking low_confidence;
  static const RandomRemasking random;
  static const ThresholdRemasking threshold;
  static const FactorRemasking factor;
  static const OriginRemasking origin;
  static const DreamConfidenceRemasking maskgit_plus(ConfidenceKind::kProbability);
  static const DreamConfidenceRemasking topk_margin(ConfidenceKind::kMargin);
  static const DreamConfidenceRemasking entropy(ConfidenceKind::kNegEntropy);
  switch (remasking) {
    case Remasking::kLowConfidence:
      return low_confidence;
    case Remasking::kRandom:
      return random;
    case Remasking::kThreshold:
      return threshold;
    case Remasking::kFactor:
      return factor;
    case Remasking::kOrigin:
      return origin;
    case Remasking::kMaskgitPlus:
      return maskgit_plus;
    case Remasking::kTopkMargin:
      return topk_margin;
    case Remasking::kEntropy:
      return entropy;
  }
  return low_confidence;
}

}  // namespace sculpt
