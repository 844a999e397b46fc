// See stable_text.h.
#include "server/stable_text.h"

#include <algorithm>

namespace sculpt {

StableTextStream::StableTextStream(const Tokenizer& tokenizer, std::vector<std::string> stops,
                                   int answer_length)
    : tokenizer_(tokenizer),
      stops_(std::move(stops)),
      canvas_(static_cast<size_t>(std::max(answer_length, 0)), -1),
      decoder_(tokenizer, /*skip_special_tokens=*/true) {}

size_t StableTextStream::StopPrefixHeld(const std::string& text) const {
  size_t held = 0;
  for (const std::string& stop : stops_) {
    // The longest proper prefix of `stop` that `text` ends with.
    for (size_t length = std::min(stop.size() - 1, text.size()); length > held; --length) {
      if (text.compare(text.size() - length, length, stop, 0, length) == 0) {
        held = length;
        break;
      }
    }
  }
  return held;
}

std::string StableTextStream::Apply(const std::map<int32_t, int32_t>& committed) {
  for (const auto& [position, token] : committed) {
    if (position >= 0 && static_cast<size_t>(position) < canvas_.size()) {
      canvas_[static_cast<size_t>(position)] = token;
    }
  }
  const size_t start = prefix_end_;
  while (prefix_end_ < canvas_.size() && canvas_[prefix_end_] >= 0) ++prefix_end_;
  if (prefix_end_ > start) {
    auto text =
        decoder_.Push(std::span<const int32_t>(canvas_).subspan(start, prefix_end_ - start));
    if (text.ok()) decoded_ += *text;
  }
  // A complete stop string ends the answer where it starts (the final result will say so);
  // a partial one at the end might still complete.
  size_t releasable = decoded_.size() - StopPrefixHeld(decoded_);
  for (const std::string& stop : stops_) {
    const size_t found = decoded_.find(stop);
    if (found != std::string::npos) releasable = std::min(releasable, found);
  }
  if (releasable <= sent_.size()) return "";
  std::string delta = decoded_.substr(sent_.size(), releasable - sent_.size());
  sent_ += delta;
  return delta;
}

std::string StableTextStream::Finish(const std::string& final_text) {
  if (final_text.compare(0, sent_.size(), sent_) != 0) return "";
  std::string rest = final_text.substr(sent_.size());
  sent_ = final_text;
  return rest;
}

}  // namespace sculpt
