// The arithmetic of one forward, the numerator of every achieved-FLOP/s figure in bench/.
#pragma once

#include "model/config.h"

namespace sculpt {

// FLOPs of one forward over `tokens` tokens in sequences of `seq_len`, with logits at
// `logit_rows` rows (multiply-add = 2 FLOPs).
inline double ForwardFlops(const ModelConfig& c, double tokens, double seq_len, double logit_rows) {
  const double q_width = double(c.n_heads) * c.head_dim();
  const double kv_width = double(c.n_kv_heads) * c.head_dim();
  const double projections =
      2.0 * c.d_model * (2 * q_width + 2 * kv_width + 3.0 * c.mlp_hidden_size);
  const double attention = 2.0 * 2.0 * seq_len * q_width;  // scores and weighted values
  return c.n_layers * tokens * (projections + attention) +
         2.0 * c.d_model * c.embedding_size * logit_rows;
}

}  // namespace sculpt
