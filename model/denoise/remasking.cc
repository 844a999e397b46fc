#include "model/denoise/remasking.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "model/denoise/low_confidence.h"
#include "model/denoise/random_remasking.h"

namespace sculpt {

absl::StatusOr<Remasking> ParseRemasking(std::string_view name) {
  if (name == "low_confidence") return Remasking::kLowConfidence;
  if (name == "random") return Remasking::kRandom;
  return absl::InvalidArgumentError(absl::StrCat("remasking: unknown policy '", std::string(name),
                                                 "' (supported: low_confidence, random)"));
}

std::string_view RemaskingName(Remasking remasking) {
  switch (remasking) {
    case Remasking::kLowConfidence:
      return "low_confidence";
    case Remasking::kRandom:
      return "random";
  }
  return "?";
}

const RemaskingPolicy& GetRemaskingPolicy(Remasking remasking) {
  static const LowConfidenceRemasking low_confidence;
  static const RandomRemasking random;
  switch (remasking) {
    case Remasking::kLowConfidence:
      return low_confidence;
    case Remasking::kRandom:
      return random;
  }
  return low_confidence;
}

}  // namespace sculpt
