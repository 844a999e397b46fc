// `sculpt generate --live`: redraws the canvas in the terminal after every step.
#pragma once

#include <ostream>
#include <span>

#include "model/generation.h"
#include "model/tokenizer.h"

namespace sculpt {

class LiveView {
 public:
  // `tokenizer` may be null (ids are shown then); `first_position` is where the answer starts.
  LiveView(std::ostream& out, const Tokenizer* tokenizer, int32_t mask_id, int first_position)
      : out_(out), tokenizer_(tokenizer), mask_id_(mask_id), first_position_(first_position) {}
  // Draws the canvas: masks as a shaded glyph, this step's commits highlighted.
  void Draw(const StepEvent& event, std::span<const int32_t> canvas, int total_steps_hint);

 private:
  std::ostream& out_;
  const Tokenizer* tokenizer_;
  int32_t mask_id_;
  int first_position_;
  int lines_drawn_ = 0;
};

}  // namespace sculpt
