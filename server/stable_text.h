// The text of an answer's committed prefix as denoising steps fill it in, released only when no
// later step can change it: the prefix must be contiguous from the start of the answer, complete
// UTF-8, and not possibly the beginning of a stop string (which would be cut). What OpenAI-style
// streams send as `delta`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace sculpt {

class StableTextStream {
 public:
  StableTextStream(const Tokenizer& tokenizer, std::vector<std::string> stops, int answer_length);

  // Takes a draft's commits (answer position → token) and returns the newly stable text.
  std::string Apply(const std::map<int32_t, int32_t>& committed);
  // Takes the final text and returns what was not sent yet. The text sent so far is always a
  // prefix of the final text (checked: on a mismatch nothing more is returned).
  std::string Finish(const std::string& final_text);

  const std::string& sent() const { return sent_; }

 private:
  // Bytes at the end of `text` that could begin a stop string.
  size_t StopPrefixHeld(const std::string& text) const;

  const Tokenizer& tokenizer_;
  const std::vector<std::string> stops_;
  std::vector<int32_t> canvas_;  // -1 where nothing is committed yet
  size_t prefix_end_ = 0;        // canvas_[0, prefix_end_) is committed
  IncrementalDecoder decoder_;
  std::string decoded_;  // text of the committed prefix (complete UTF-8)
  std::string sent_;
};

}  // namespace sculpt
