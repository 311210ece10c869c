// Tiny model shapes shared by the model, optimizer, parallel and trainer tests. Each test takes one
// and changes on the returned value only the fields it depends on (a vocabulary that splits over
// tp, more layers, dense layers first), with the reason next to the change.
//   TinyMoeConfig: vocab 37 (not a multiple of 8), hidden 16, 4 heads (2 KV), 2 MoE layers of
//     4 experts top-2 (width 8) plus 1 shared expert, dense width 12, aux-loss 0.01, init std 0.3
//     (large enough that every path carries a real gradient), 64 positions.
//   TinyOptimizerConfig: vocab 32, hidden 16, 2 heads (2 KV), 2 MoE layers of 4 experts top-2
//     (width 8), no shared expert, dense width 12, default loss coefficients and init, 32 positions.
#pragma once

#include "model/config.h"

namespace moetrain::testing {

inline model::ModelConfig TinyMoeConfig() {
  model::ModelConfig c;
  c.vocab_size = 37;
  c.hidden_size = 16;
  c.intermediate_size = 12;
  c.moe_intermediate_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.num_shared_experts = 1;
  c.router_aux_loss_coef = 0.01;
  c.initializer_range = 0.3;
  c.max_position_embeddings = 64;
  return c;
}

inline model::ModelConfig TinyOptimizerConfig() {
  model::ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 12;
  c.moe_intermediate_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.max_position_embeddings = 32;
  return c;
}

}  // namespace moetrain::testing
