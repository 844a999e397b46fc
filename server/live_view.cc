#include "server/live_view.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace sculpt {
namespace {

constexpr const char* kMaskGlyph = "\u2591";  // light shade: a position still masked
constexpr const char* kHighlight = "\x1b[1;30;42m";
constexpr const char* kReset = "\x1b[0m";

}  // namespace

void LiveView::Draw(const StepEvent& event, std::span<const int32_t> canvas, int total_steps_hint) {
  std::string text;
  for (int position = first_position_; position < static_cast<int>(canvas.size()); ++position) {
    const int32_t token = canvas[position];
    if (token == mask_id_) {
      text += kMaskGlyph;
      continue;
    }
    std::string piece;
    if (tokenizer_ != nullptr) {
      const int32_t ids[] = {token};
      piece = tokenizer_->Decode(ids).value_or("?");
    } else {
      piece = absl::StrCat(token, " ");
    }
    const bool fresh = std::any_of(event.committed.begin(), event.committed.end(),
                                   [&](const auto& commit) { return commit.first == position; });
    text += fresh ? absl::StrCat(kHighlight, piece, kReset) : piece;
  }
  // Move back over what the previous frame drew, then redraw below a status line.
  if (lines_drawn_ > 0) out_ << "\x1b[" << lines_drawn_ << "F\x1b[J";
  const std::string status = absl::StrCat(
      "step ", event.step + 1, total_steps_hint > 0 ? absl::StrCat("/", total_steps_hint) : "",
      "  block ", event.block, "  committed ", event.committed.size(), "  masks left ",
      event.masks_left, "\n");
  out_ << status << text << "\n" << std::flush;
  lines_drawn_ = 1 + 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace sculpt
