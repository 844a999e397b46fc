// A minimal ModelConfig for state-machine tests that need no weights: vocabulary of 10 with the
// mask at 9 and EOS at 8.
#pragma once

#include "model/config.h"

namespace sculpt::testing {

inline ModelConfig SmallConfig() {
  ModelConfig config;
  config.d_model = 8;
  config.n_heads = 2;
  config.n_kv_heads = 2;
  config.n_layers = 1;
  config.vocab_size = 10;
  config.embedding_size = 10;
  config.max_sequence_length = 32;
  config.mask_token_id = 9;
  config.eos_token_id = 8;
  return config;
}

}  // namespace sculpt::testing
