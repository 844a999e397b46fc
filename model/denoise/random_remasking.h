#pragma once

#include "model/denoise/remasking.h"

namespace sculpt {

class RandomRemasking final : public RemaskingPolicy {
 public:
  void Score(const RemaskingContext& context, std::span<const int32_t> positions,
             std::span<const double> model_confidence, std::span<double> scores) const override;
};

}  // namespace sculpt
