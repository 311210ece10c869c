// Recipe parsing: every field, defaults, each kind of error with its exact FILE:LINE:COL and key
// path,
// --set overrides, the YAML round trip, and the embedded tiny recipe.
#include "trainer/recipe.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/embedded_recipe.h"
#include "trainer/layout.h"

namespace moetrain::trainer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFile[] = "r.yaml";

// Lines 1-3: the required data section; the body starts at line 4.
std::string WithData(const std::string& body) {
  return "data:\n  tokenizer: t.model\n  shards: s\n" + body;
}

// Parses and expects InvalidArgument; returns the message.
std::string ParseError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<Recipe> r = ParseRecipe(text, kFile, overrides);
  EXPECT_FALSE(r.ok()) << "parsed unexpectedly:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  return std::string(r.status().message());
}

Recipe ParseOk(const std::string& text, const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<Recipe> r = ParseRecipe(text, kFile, overrides);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Recipe{};
}

// Every field set to a non-default value.
constexpr char kFullRecipe[] = R"(# a comment
model:
  vocab_size: 1000
  hidden_size: 96
  intermediate_size: 192
  num_hidden_layers: 3
  num_attention_heads: 6
  num_key_value_heads: 3
  head_dim: 32
  num_local_experts: 6
  num_experts_per_tok: 3
  rms_norm_eps: 1.0e-6
  rope_theta: 500000
  max_position_embeddings: 512
  tie_word_embeddings: true
  router_aux_loss_coef: 0.02
  initializer_range: 0.01
  num_shared_experts: 2
  moe_intermediate_size: 64
  first_k_dense_replace: 1
  scoring_func: sigmoid
  norm_topk_prob: false
  balancing: bias
  router_bias_update_rate: 0.005
  router_z_loss_coef: 0.001
  capacity_factor: 1.25
data:
  tokenizer: out/tok.model
  shards: "out/shards dir"
optim:
  lr: 2.5e-3
  betas: [0.8, 0.99]
  eps: 1e-6
  weight_decay: 0.05
  grad_clip: 0.5
schedule:
  warmup_steps: 20
  decay: linear
  min_lr: 1e-4
  total_steps: 300
batch:
  micro_batch: 4
  grad_accum: 2
  seq_len: 64
parallel:
  zero_stage: 3
precision: fp16
loss_scale:
  initial: 1024
  growth_factor: 4
  backoff_factor: 0.25
  growth_interval: 50
  hysteresis: 3
  min: 0.5
activation_checkpointing:
  mode: selective
  every: 2
logging:
  every_steps: 5
  metrics_file: out/m.jsonl
eval:
  every_steps: 50
  batches: 3
checkpoint:
  dir: ckpt
  every_steps: 0
  keep: 5
  async: false
sample:
  prompts:
    - "Q: What"
    - 'The '
    - plain words
  max_new_tokens: 20
  temperature: 0.7
  top_p: 0.5
  seed: 99
seed: 18446744073709551615
threads: 2
)";

void ExpectSameRecipe(const Recipe& a, const Recipe& b) {
  const model::ModelConfig &x = a.model, &y = b.model;
  EXPECT_EQ(x.vocab_size, y.vocab_size);
  EXPECT_EQ(a.vocab_size_auto, b.vocab_size_auto);
  EXPECT_EQ(x.hidden_size, y.hidden_size);
  EXPECT_EQ(x.intermediate_size, y.intermediate_size);
  EXPECT_EQ(x.num_hidden_layers, y.num_hidden_layers);
  EXPECT_EQ(x.num_attention_heads, y.num_attention_heads);
  EXPECT_EQ(x.num_key_value_heads, y.num_key_value_heads);
  EXPECT_EQ(x.head_dim, y.head_dim);
  EXPECT_EQ(x.num_local_experts, y.num_local_experts);
  EXPECT_EQ(x.num_experts_per_tok, y.num_experts_per_tok);
  EXPECT_EQ(x.rms_norm_eps, y.rms_norm_eps);
  EXPECT_EQ(x.rope_theta, y.rope_theta);
  EXPECT_EQ(x.max_position_embeddings, y.max_position_embeddings);
  EXPECT_EQ(x.tie_word_embeddings, y.tie_word_embeddings);
  EXPECT_EQ(x.router_aux_loss_coef, y.router_aux_loss_coef);
  EXPECT_EQ(x.initializer_range, y.initializer_range);
  EXPECT_EQ(x.num_shared_experts, y.num_shared_experts);
  EXPECT_EQ(x.moe_intermediate_size, y.moe_intermediate_size);
  EXPECT_EQ(x.first_k_dense_replace, y.first_k_dense_replace);
  EXPECT_EQ(x.scoring_func, y.scoring_func);
  EXPECT_EQ(x.norm_topk_prob, y.norm_topk_prob);
  EXPECT_EQ(x.balancing, y.balancing);
  EXPECT_EQ(x.router_bias_update_rate, y.router_bias_update_rate);
  EXPECT_EQ(x.router_z_loss_coef, y.router_z_loss_coef);
  EXPECT_EQ(x.capacity_factor, y.capacity_factor);
  EXPECT_EQ(a.data.tokenizer, b.data.tokenizer);
  EXPECT_EQ(a.data.shards, b.data.shards);
  EXPECT_EQ(a.optim.lr, b.optim.lr);
  EXPECT_EQ(a.optim.betas, b.optim.betas);
  EXPECT_EQ(a.optim.eps, b.optim.eps);
  EXPECT_EQ(a.optim.weight_decay, b.optim.weight_decay);
  EXPECT_EQ(a.optim.grad_clip, b.optim.grad_clip);
  EXPECT_EQ(a.optim.max_consecutive_skips, b.optim.max_consecutive_skips);
  EXPECT_EQ(a.schedule.warmup_steps, b.schedule.warmup_steps);
  EXPECT_EQ(a.schedule.decay, b.schedule.decay);
  EXPECT_EQ(a.schedule.min_lr, b.schedule.min_lr);
  EXPECT_EQ(a.schedule.total_steps, b.schedule.total_steps);
  EXPECT_EQ(a.batch.micro_batch, b.batch.micro_batch);
  EXPECT_EQ(a.batch.grad_accum, b.batch.grad_accum);
  EXPECT_EQ(a.batch.seq_len, b.batch.seq_len);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.logging.every_steps, b.logging.every_steps);
  EXPECT_EQ(a.logging.metrics_file, b.logging.metrics_file);
  EXPECT_EQ(a.eval.every_steps, b.eval.every_steps);
  EXPECT_EQ(a.eval.batches, b.eval.batches);
  EXPECT_EQ(a.checkpoint.dir, b.checkpoint.dir);
  EXPECT_EQ(a.checkpoint.every_steps, b.checkpoint.every_steps);
  EXPECT_EQ(a.checkpoint.keep, b.checkpoint.keep);
  EXPECT_EQ(a.checkpoint.async, b.checkpoint.async);
  EXPECT_EQ(a.sample.prompts, b.sample.prompts);
  EXPECT_EQ(a.sample.max_new_tokens, b.sample.max_new_tokens);
  EXPECT_EQ(a.sample.temperature, b.sample.temperature);
  EXPECT_EQ(a.sample.top_p, b.sample.top_p);
  EXPECT_EQ(a.sample.seed, b.sample.seed);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.threads, b.threads);
  EXPECT_EQ(a.parallel.tp, b.parallel.tp);
  EXPECT_EQ(a.parallel.ep, b.parallel.ep);
  EXPECT_EQ(a.parallel.ep_dispatch, b.parallel.ep_dispatch);
  EXPECT_EQ(a.parallel.ranks_per_node, b.parallel.ranks_per_node);
  EXPECT_EQ(a.parallel.zero_stage, b.parallel.zero_stage);
  EXPECT_EQ(a.parallel.collective_timeout_s, b.parallel.collective_timeout_s);
  EXPECT_EQ(a.loss_scale.initial, b.loss_scale.initial);
  EXPECT_EQ(a.loss_scale.growth_factor, b.loss_scale.growth_factor);
  EXPECT_EQ(a.loss_scale.backoff_factor, b.loss_scale.backoff_factor);
  EXPECT_EQ(a.loss_scale.growth_interval, b.loss_scale.growth_interval);
  EXPECT_EQ(a.loss_scale.hysteresis, b.loss_scale.hysteresis);
  EXPECT_EQ(a.loss_scale.min, b.loss_scale.min);
  EXPECT_EQ(a.activation_checkpointing.mode, b.activation_checkpointing.mode);
  EXPECT_EQ(a.activation_checkpointing.every, b.activation_checkpointing.every);
}

TEST(RecipeTest, FullRecipeParsesEveryField) {
  const Recipe r = ParseOk(kFullRecipe);
  const model::ModelConfig& m = r.model;
  EXPECT_EQ(m.vocab_size, 1000);
  EXPECT_FALSE(r.vocab_size_auto);
  EXPECT_EQ(m.hidden_size, 96);
  EXPECT_EQ(m.intermediate_size, 192);
  EXPECT_EQ(m.num_hidden_layers, 3);
  EXPECT_EQ(m.num_attention_heads, 6);
  EXPECT_EQ(m.num_key_value_heads, 3);
  EXPECT_EQ(m.head_dim, 32);
  EXPECT_EQ(m.num_local_experts, 6);
  EXPECT_EQ(m.num_experts_per_tok, 3);
  EXPECT_EQ(m.rms_norm_eps, 1e-6);
  EXPECT_EQ(m.rope_theta, 500000.0);
  EXPECT_EQ(m.max_position_embeddings, 512);
  EXPECT_TRUE(m.tie_word_embeddings);
  EXPECT_EQ(m.router_aux_loss_coef, 0.02);
  EXPECT_EQ(m.initializer_range, 0.01);
  EXPECT_EQ(m.num_shared_experts, 2);
  EXPECT_EQ(m.moe_intermediate_size, 64);
  EXPECT_EQ(m.first_k_dense_replace, 1);
  EXPECT_EQ(m.scoring_func, "sigmoid");
  EXPECT_FALSE(m.norm_topk_prob);
  EXPECT_EQ(m.balancing, "bias");
  EXPECT_EQ(m.router_bias_update_rate, 0.005);
  EXPECT_EQ(m.router_z_loss_coef, 0.001);
  EXPECT_EQ(m.capacity_factor, 1.25);
  EXPECT_EQ(r.data.tokenizer, "out/tok.model");
  EXPECT_EQ(r.data.shards, "out/shards dir");
  EXPECT_EQ(r.optim.lr, 2.5e-3);
  EXPECT_EQ(r.optim.betas[0], 0.8);
  EXPECT_EQ(r.optim.betas[1], 0.99);
  EXPECT_EQ(r.optim.eps, 1e-6);
  EXPECT_EQ(r.optim.weight_decay, 0.05);
  EXPECT_EQ(r.optim.grad_clip, 0.5);
  EXPECT_EQ(r.schedule.warmup_steps, 20);
  EXPECT_EQ(r.schedule.decay, DecayKind::kLinear);
  EXPECT_EQ(r.schedule.min_lr, 1e-4);
  EXPECT_EQ(r.schedule.total_steps, 300);
  EXPECT_EQ(r.batch.micro_batch, 4);
  EXPECT_EQ(r.batch.grad_accum, 2);
  EXPECT_EQ(r.batch.seq_len, 64);
  EXPECT_EQ(r.parallel.zero_stage, 3);
  EXPECT_EQ(r.precision, Precision::kFp16);
  EXPECT_EQ(r.loss_scale.initial, 1024.0);
  EXPECT_EQ(r.loss_scale.growth_factor, 4.0);
  EXPECT_EQ(r.loss_scale.backoff_factor, 0.25);
  EXPECT_EQ(r.loss_scale.growth_interval, 50);
  EXPECT_EQ(r.loss_scale.hysteresis, 3);
  EXPECT_EQ(r.loss_scale.min, 0.5);
  EXPECT_EQ(r.activation_checkpointing.mode, model::ActivationCheckpointing::kSelective);
  EXPECT_EQ(r.activation_checkpointing.every, 2);
  EXPECT_EQ(r.logging.every_steps, 5);
  EXPECT_EQ(r.logging.metrics_file, "out/m.jsonl");
  EXPECT_EQ(r.eval.every_steps, 50);
  EXPECT_EQ(r.eval.batches, 3);
  EXPECT_EQ(r.checkpoint.dir, "ckpt");
  EXPECT_EQ(r.checkpoint.every_steps, 0);
  EXPECT_EQ(r.checkpoint.keep, 5);
  EXPECT_FALSE(r.checkpoint.async);
  EXPECT_EQ(r.sample.prompts, (std::vector<std::string>{"Q: What", "The ", "plain words"}));
  EXPECT_EQ(r.sample.max_new_tokens, 20);
  EXPECT_EQ(r.sample.temperature, 0.7);
  EXPECT_EQ(r.sample.top_p, 0.5);
  EXPECT_EQ(r.sample.seed, 99u);
  EXPECT_EQ(r.seed, 18446744073709551615ull);
  EXPECT_EQ(r.threads, 2);
}

TEST(RecipeTest, DefaultsApply) {
  const Recipe r = ParseOk(WithData(""));
  const Recipe defaults;
  Recipe expected = defaults;
  expected.data.tokenizer = "t.model";
  expected.data.shards = "s";
  ExpectSameRecipe(r, expected);
  // Spot-check the documented defaults themselves.
  EXPECT_TRUE(r.vocab_size_auto);
  EXPECT_EQ(r.model.vocab_size, 0);
  EXPECT_EQ(r.model.hidden_size, model::ModelConfig{}.hidden_size);
  EXPECT_EQ(r.optim.lr, 3e-4);
  EXPECT_EQ(r.schedule.decay, DecayKind::kCosine);
  EXPECT_EQ(r.precision, Precision::kFp32);
  EXPECT_EQ(r.parallel.zero_stage, 0);
  EXPECT_EQ(r.activation_checkpointing.mode, model::ActivationCheckpointing::kNone);
  EXPECT_EQ(r.activation_checkpointing.every, 1);
  EXPECT_EQ(r.loss_scale.initial, 65536.0);
  EXPECT_EQ(r.seed, 1234u);
  EXPECT_EQ(r.threads, 0);
  EXPECT_TRUE(r.sample.prompts.empty());
  // Empty sections and an empty metrics_file are allowed.
  const Recipe r2 = ParseOk(WithData("eval:\nlogging:\n  metrics_file:\n"));
  EXPECT_EQ(r2.logging.metrics_file, "");
  EXPECT_EQ(r2.eval.batches, EvalConfig{}.batches);
}

TEST(RecipeTest, VocabSizeAuto) {
  Recipe r = ParseOk(WithData("model:\n  vocab_size: auto\n"));
  EXPECT_TRUE(r.vocab_size_auto);
  EXPECT_EQ(r.model.vocab_size, 0);
  ASSERT_TRUE(ResolveVocabSize(777, &r).ok());
  EXPECT_FALSE(r.vocab_size_auto);
  EXPECT_EQ(r.model.vocab_size, 777);

  Recipe explicit_vocab = ParseOk(WithData("model:\n  vocab_size: 500\n"));
  EXPECT_TRUE(ResolveVocabSize(500, &explicit_vocab).ok());
  const absl::Status too_small = ResolveVocabSize(501, &explicit_vocab);
  EXPECT_EQ(too_small.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_small.message()), HasSubstr("model.vocab_size"));
  EXPECT_FALSE(ResolveVocabSize(0, &r).ok());
}

TEST(RecipeTest, UnknownNestedKeyNamesLineColumnAndSuggests) {
  const std::string text = WithData(
      "model:\n"             // 4
      "  hidden_size: 64\n"  // 5
      "  hiden_size: 2\n");  // 6
  const std::string msg = ParseError(text);
  EXPECT_THAT(msg, HasSubstr("r.yaml:6:3: model.hiden_size: unknown key"));
  EXPECT_THAT(msg, HasSubstr("did you mean model.hidden_size?"));
}

TEST(RecipeTest, UnknownTopLevelKeySuggests) {
  const std::string msg = ParseError(WithData("optimizer:\n  lr: 1\n"));
  EXPECT_THAT(msg, HasSubstr("r.yaml:4:1: optimizer: unknown key; did you mean optim?"));
  const std::string far = ParseError(WithData("zzzzzz: 1\n"));
  EXPECT_THAT(far, HasSubstr("r.yaml:4:1: zzzzzz: unknown key; known keys: mode, model, data, optim"));
  EXPECT_THAT(
      ParseError(WithData("optim:\n  zzzzzz: 1\n")),
      HasSubstr("r.yaml:5:3: optim.zzzzzz: unknown key; known keys in optim: lr, betas, eps"));
}

TEST(RecipeTest, WrongTypes) {
  // A word for an int.
  EXPECT_THAT(ParseError(WithData("model:\n  hidden_size: big\n")),
              HasSubstr("r.yaml:5:16: model.hidden_size: expected an integer, got 'big'"));
  // A float for an int.
  EXPECT_THAT(ParseError(WithData("model:\n  num_hidden_layers: 2.5\n")),
              HasSubstr("r.yaml:5:22: model.num_hidden_layers: expected an integer, got '2.5'"));
  // A quoted number is a string.
  EXPECT_THAT(ParseError(WithData("batch:\n  seq_len: \"128\"\n")),
              HasSubstr("r.yaml:5:12: batch.seq_len: expected an integer, got the quoted string"));
  // A list for a scalar.
  EXPECT_THAT(ParseError(WithData("optim:\n  lr: [1, 2]\n")),
              HasSubstr("r.yaml:5:7: optim.lr: expected a number, got a list"));
  // A scalar for a section.
  EXPECT_THAT(ParseError(WithData("batch: 5\n")),
              HasSubstr("r.yaml:4:8: batch: expected a mapping of batch keys, got '5'"));
  // An empty value for an int points at the key.
  EXPECT_THAT(ParseError(WithData("eval:\n  batches:\n")),
              HasSubstr("r.yaml:5:3: eval.batches: expected an integer, got an empty value"));
  // Not a YAML 1.2 boolean.
  EXPECT_THAT(ParseError(WithData("checkpoint:\n  async: yes\n")),
              HasSubstr("r.yaml:5:10: checkpoint.async: expected true or false, got 'yes'"));
  // An enum with a typo.
  EXPECT_THAT(ParseError(WithData("schedule:\n  decay: cosin\n")),
              HasSubstr("r.yaml:5:10: schedule.decay: expected one of cosine | linear | constant, "
                        "got 'cosin' (did you mean cosine?)"));
  // Negative for an unsigned seed; int overflow for threads.
  EXPECT_THAT(ParseError(WithData("seed: -1\n")),
              HasSubstr("r.yaml:4:7: seed: expected a non-negative integer, got '-1'"));
  EXPECT_THAT(ParseError(WithData("threads: 9999999999\n")),
              HasSubstr("r.yaml:4:10: threads: expected an integer in [-2147483648, 2147483647]"));
  // Non-finite numbers and hex are rejected.
  EXPECT_THAT(ParseError(WithData("optim:\n  eps: .inf\n")),
              HasSubstr("r.yaml:5:8: optim.eps: expected a number, got '.inf'"));
  EXPECT_THAT(ParseError(WithData("model:\n  hidden_size: 0x40\n")),
              HasSubstr("r.yaml:5:16: model.hidden_size: expected an integer"));
  // A list element of the wrong type names its index.
  EXPECT_THAT(ParseError(WithData("optim:\n  betas: [0.9, x]\n")),
              HasSubstr("r.yaml:5:16: optim.betas[1]: expected a number, got 'x'"));
  EXPECT_THAT(
      ParseError(WithData("optim:\n  betas: [0.9]\n")),
      HasSubstr("r.yaml:5:10: optim.betas: expected a list of two numbers, got a list of 1"));
  EXPECT_THAT(ParseError(WithData("sample:\n  prompts: hello\n")),
              HasSubstr("r.yaml:5:12: sample.prompts: expected a list of strings, got 'hello'"));
  EXPECT_THAT(ParseError(WithData("sample:\n  prompts:\n    - [a]\n")),
              HasSubstr("r.yaml:6:7: sample.prompts[0]: expected a string, got a list"));
  // The document itself must be a mapping.
  EXPECT_THAT(ParseError("- a\n- b\n"), HasSubstr("r.yaml:1:1: expected a mapping of sections"));
}

TEST(RecipeTest, AllTypeErrorsAreReportedTogether) {
  const std::string msg =
      ParseError(WithData("model:\n"                 // 4
                          "  hidden_size: x\n"       // 5
                          "batch:\n"                 // 6
                          "  micro_batch: 1.5\n"));  // 7
  EXPECT_THAT(msg, HasSubstr("r.yaml:5:16: model.hidden_size: expected an integer"));
  EXPECT_THAT(msg, HasSubstr("\nr.yaml:7:16: batch.micro_batch: expected an integer"));
}

TEST(RecipeTest, DuplicateKey) {
  EXPECT_THAT(ParseError(WithData("seed: 1\nseed: 2\n")),
              HasSubstr("r.yaml:5:1: seed: duplicate key (first given at line 4)"));
}

TEST(RecipeTest, OutOfRange) {
  EXPECT_THAT(ParseError(WithData("optim:\n  lr: -1\n")),
              HasSubstr("r.yaml:5:7: optim.lr: must be > 0, got -1"));
  EXPECT_THAT(ParseError(WithData("optim:\n  betas: [0.9, 1.0]\n")),
              HasSubstr("r.yaml:5:16: optim.betas[1]: must be in [0, 1), got 1"));
  EXPECT_THAT(ParseError(WithData("sample:\n  top_p: 0\n")),
              HasSubstr("r.yaml:5:10: sample.top_p: must be in (0, 1], got 0"));
  EXPECT_THAT(ParseError(WithData("batch:\n  micro_batch: 0\n")),
              HasSubstr("r.yaml:5:16: batch.micro_batch: must be > 0, got 0"));
  EXPECT_THAT(ParseError(WithData("logging:\n  every_steps: 0\n")),
              HasSubstr("r.yaml:5:16: logging.every_steps: must be >= 1, got 0"));
  EXPECT_THAT(ParseError(WithData("threads: -2\n")),
              HasSubstr("r.yaml:4:10: threads: must be >= 0"));
  // A ModelConfig rule, located at the offending model key.
  EXPECT_THAT(ParseError(WithData("model:\n  hidden_size: 64\n  rope_theta: 1\n")),
              HasSubstr("r.yaml:6:15: model.rope_theta: must be > 1"));
  EXPECT_THAT(ParseError(WithData("model:\n  scoring_func: sigmod\n")),
              HasSubstr("r.yaml:5:17: model.scoring_func: expected one of softmax | sigmoid, got "
                        "'sigmod' (did you mean sigmoid?)"));
}

TEST(RecipeTest, Inconsistencies) {
  // top-k > experts (ModelConfig::Validate), located at num_experts_per_tok.
  EXPECT_THAT(ParseError(WithData("model:\n"
                                  "  num_local_experts: 4\n"       // 5
                                  "  num_experts_per_tok: 5\n")),  // 6
              HasSubstr("r.yaml:6:24: model.num_experts_per_tok: must be in [1, "
                        "num_local_experts=4], got 5"));
  // heads % kv_heads.
  EXPECT_THAT(ParseError(WithData("model:\n  num_attention_heads: 4\n  num_key_value_heads: 3\n")),
              HasSubstr("r.yaml:6:24: model.num_key_value_heads: must be > 0 and divide"));
  // warmup > total.
  EXPECT_THAT(ParseError(WithData("schedule:\n  warmup_steps: 50\n  total_steps: 40\n")),
              HasSubstr("r.yaml:5:17: schedule.warmup_steps: must be <= schedule.total_steps "
                        "(40), got 50"));
  // seq_len > max_position_embeddings: the default seq_len (256) against a small RoPE table.
  EXPECT_THAT(
      ParseError(WithData("model:\n  max_position_embeddings: 128\nbatch:\n  seq_len: 200\n")),
      HasSubstr("r.yaml:7:12: batch.seq_len: must be <= model.max_position_embeddings "
                "(128), got 200"));
  // A default that conflicts is located at its section (batch absent: the document's first key).
  EXPECT_THAT(ParseError(WithData("model:\n  max_position_embeddings: 128\n")),
              HasSubstr("r.yaml:1:1: batch.seq_len: must be <= model.max_position_embeddings"));
  // min_lr > lr.
  EXPECT_THAT(ParseError(WithData("optim:\n  lr: 1e-3\nschedule:\n  min_lr: 2e-3\n")),
              HasSubstr("r.yaml:7:11: schedule.min_lr: must be <= optim.lr (0.001), got 0.002"));
}

TEST(RecipeTest, YamlSyntaxError) {
  const std::string msg = ParseError(
      "data:\n"
      "  tokenizer: t.model\n"
      "  shards: [s\n"
      "optim:\n"
      "  lr: 1\n");
  EXPECT_THAT(msg, HasSubstr("r.yaml:"));
  EXPECT_THAT(msg, HasSubstr("YAML syntax error"));
  const std::string bad_indent = ParseError("data:\n  tokenizer: t\n shards: s\n");
  EXPECT_THAT(bad_indent, HasSubstr("r.yaml:3:"));
  EXPECT_THAT(bad_indent, HasSubstr("YAML syntax error"));
  EXPECT_THAT(ParseError(WithData("---\nseed: 1\n")), HasSubstr("one YAML document"));
}

TEST(RecipeTest, PrecisionAndModelOptions) {
  using model::ActivationCheckpointing;
  const Recipe bf16 = ParseOk(WithData("precision: bf16\n"));
  EXPECT_EQ(bf16.precision, Precision::kBf16);
  EXPECT_EQ(ModelOptionsFromRecipe(bf16).compute_dtype, DType::kBF16);
  EXPECT_EQ(ModelOptionsFromRecipe(ParseOk(WithData("precision: fp16\n"))).compute_dtype,
            DType::kF16);
  const model::ModelOptions fp32 = ModelOptionsFromRecipe(ParseOk(WithData("")));
  EXPECT_EQ(fp32.compute_dtype, DType::kF32);
  EXPECT_EQ(fp32.checkpointing, ActivationCheckpointing::kNone);
  EXPECT_EQ(fp32.checkpoint_every, 1);
  EXPECT_THAT(ParseError(WithData("precision: bf17\n")),
              HasSubstr("r.yaml:4:12: precision: expected one of fp32 | bf16 | fp16, got 'bf17' "
                        "(did you mean bf16?)"));
}

TEST(RecipeTest, ActivationCheckpointingScalarOrMapping) {
  using model::ActivationCheckpointing;
  const Recipe full = ParseOk(WithData("activation_checkpointing: full\n"));
  EXPECT_EQ(full.activation_checkpointing.mode, ActivationCheckpointing::kFull);
  EXPECT_EQ(full.activation_checkpointing.every, 1);
  const Recipe sel =
      ParseOk(WithData("activation_checkpointing:\n  mode: selective\n  every: 3\n"));
  const model::ModelOptions o = ModelOptionsFromRecipe(sel);
  EXPECT_EQ(o.checkpointing, ActivationCheckpointing::kSelective);
  EXPECT_EQ(o.checkpoint_every, 3);
  const Recipe set = ParseOk(WithData(""), {"activation_checkpointing=full",
                                            "activation_checkpointing.every=2"});
  EXPECT_EQ(set.activation_checkpointing.mode, ActivationCheckpointing::kFull);
  EXPECT_EQ(set.activation_checkpointing.every, 2);
  EXPECT_THAT(ParseError(WithData("activation_checkpointing: some\n")),
              HasSubstr("r.yaml:4:27: activation_checkpointing.mode: expected one of none | full | "
                        "selective, got 'some'"));
  EXPECT_THAT(ParseError(WithData("activation_checkpointing:\n  mode: full\n  every: 0\n")),
              HasSubstr("r.yaml:6:10: activation_checkpointing.every: must be >= 1, got 0"));
  EXPECT_THAT(ParseError(WithData("activation_checkpointing: [full]\n")),
              HasSubstr("r.yaml:4:27: activation_checkpointing: expected a mode value or a mapping "
                        "of activation_checkpointing keys, got a list"));
  EXPECT_THAT(ParseError(WithData("activation_checkpointing:\n  evry: 2\n")),
              HasSubstr("r.yaml:5:3: activation_checkpointing.evry: unknown key; did you mean "
                        "activation_checkpointing.every?"));
}

TEST(RecipeTest, ZeroStage) {
  EXPECT_EQ(ParseOk(WithData("")).parallel.zero_stage, 0);
  for (int stage = 0; stage <= 3; ++stage)
    EXPECT_EQ(ParseOk(WithData("parallel:\n  zero_stage: " + std::to_string(stage) + "\n"))
                  .parallel.zero_stage,
              stage);
  EXPECT_THAT(ParseError(WithData("parallel:\n  zero_stage: 4\n")),
              HasSubstr("r.yaml:5:15: parallel.zero_stage: must be 0, 1, 2 or 3, got 4"));
  EXPECT_THAT(ParseError(WithData("parallel:\n  zero_stage: -1\n")),
              HasSubstr("r.yaml:5:15: parallel.zero_stage: must be 0, 1, 2 or 3, got -1"));
}

TEST(RecipeTest, FaultHandlingKeys) {
  const Recipe d = ParseOk(WithData(""));
  EXPECT_EQ(d.optim.max_consecutive_skips, OptimConfig().max_consecutive_skips);
  EXPECT_EQ(d.parallel.collective_timeout_s, ParallelConfig().collective_timeout_s);
  const Recipe r = ParseOk(WithData("optim:\n  max_consecutive_skips: 0\n"
                                    "parallel:\n  collective_timeout_s: 2.5\n"));
  EXPECT_EQ(r.optim.max_consecutive_skips, 0);
  EXPECT_EQ(r.parallel.collective_timeout_s, 2.5);
  EXPECT_THAT(ParseError(WithData("optim:\n  max_consecutive_skips: -1\n")),
              HasSubstr("r.yaml:5:26: optim.max_consecutive_skips: must be >= 0 (0 = never abort), got -1"));
  EXPECT_THAT(ParseError(WithData("parallel:\n  collective_timeout_s: -3\n")),
              HasSubstr("r.yaml:5:25: parallel.collective_timeout_s: must be >= 0 seconds (0 = off), got -3"));
}

TEST(RecipeTest, LossScale) {
  const Recipe d = ParseOk(WithData(""));
  const optim::LossScalerConfig defaults;  // the recipe's defaults are the scaler's
  const optim::LossScalerConfig c = LossScalerConfigFromRecipe(d);
  EXPECT_EQ(c.initial_scale, defaults.initial_scale);
  EXPECT_EQ(c.growth_factor, defaults.growth_factor);
  EXPECT_EQ(c.backoff_factor, defaults.backoff_factor);
  EXPECT_EQ(c.growth_interval, defaults.growth_interval);
  EXPECT_EQ(c.hysteresis, defaults.hysteresis);
  EXPECT_EQ(c.min_scale, defaults.min_scale);
  const Recipe r = ParseOk(
      WithData("precision: fp16\nloss_scale:\n  initial: 8\n  hysteresis: 1\n  min: 2\n"));
  const optim::LossScalerConfig rc = LossScalerConfigFromRecipe(r);
  EXPECT_EQ(rc.initial_scale, 8.0);
  EXPECT_EQ(rc.hysteresis, 1);
  EXPECT_EQ(rc.min_scale, 2.0);
  EXPECT_TRUE(optim::LossScaler::Dynamic(rc).ok());  // every recipe that validates makes a scaler
  // Allowed with any precision.
  EXPECT_EQ(ParseOk(WithData("loss_scale:\n  initial: 4\n")).loss_scale.initial, 4.0);
  const std::string bad = ParseError(WithData(
      "loss_scale:\n  initial: 0.5\n  growth_factor: 1\n  backoff_factor: 1.5\n"
      "  growth_interval: 0\n  hysteresis: 0\n"));
  EXPECT_THAT(bad, HasSubstr("r.yaml:5:12: loss_scale.initial: must be >= loss_scale.min (1.0), "
                             "got 0.5"));
  EXPECT_THAT(bad, HasSubstr("r.yaml:6:18: loss_scale.growth_factor: must be > 1, got 1.0"));
  EXPECT_THAT(bad, HasSubstr("r.yaml:7:19: loss_scale.backoff_factor: must be in (0, 1), got 1.5"));
  EXPECT_THAT(bad, HasSubstr("r.yaml:8:20: loss_scale.growth_interval: must be >= 1, got 0"));
  EXPECT_THAT(bad, HasSubstr("r.yaml:9:15: loss_scale.hysteresis: must be >= 1, got 0"));
  EXPECT_THAT(ParseError(WithData("loss_scale:\n  min: 0\n")),
              HasSubstr("r.yaml:5:8: loss_scale.min: must be > 0, got 0.0"));
  EXPECT_THAT(ParseError(WithData(""), {"loss_scale.hysteresis=x"}),
              HasSubstr("--set loss_scale.hysteresis: loss_scale.hysteresis: expected an integer"));
}

TEST(RecipeTest, CheckpointSection) {
  const Recipe r = ParseOk(WithData("checkpoint:\n  dir: c\n  every_steps: 100\n  keep: 2\n  async: false\n"));
  EXPECT_EQ(r.checkpoint.dir, "c");
  EXPECT_EQ(r.checkpoint.every_steps, 100);
  EXPECT_EQ(r.checkpoint.keep, 2);
  EXPECT_FALSE(r.checkpoint.async);
  EXPECT_THAT(ParseError(WithData("checkpoint:\n  every_steps: -1\n")),
              HasSubstr("checkpoint.every_steps: must be >= 0"));
  EXPECT_THAT(ParseError(WithData("checkpoint:\n  dir: \"\"\n  every_steps: 5\n")),
              HasSubstr("checkpoint.dir: must not be empty"));
}

TEST(RecipeTest, DistillSection) {
  const Recipe d = ParseOk(WithData(""));
  EXPECT_EQ(d.mode, TrainMode::kPretrain);
  EXPECT_EQ(d.distill.alpha, 0.7);
  EXPECT_EQ(d.distill.temperature, 2.0);
  const Recipe r = ParseOk(WithData("mode: distill\ndistill:\n  teacher: ckpt/step-1\n  alpha: 0.25\n"
                                    "  temperature: 4\n"));
  EXPECT_EQ(r.mode, TrainMode::kDistill);
  EXPECT_EQ(r.distill.teacher, "ckpt/step-1");
  EXPECT_EQ(r.distill.alpha, 0.25);
  EXPECT_EQ(r.distill.temperature, 4.0);
  const Recipe back = ParseOk(RecipeToYaml(r));
  EXPECT_EQ(back.mode, TrainMode::kDistill);
  EXPECT_EQ(back.distill.teacher, "ckpt/step-1");
  EXPECT_EQ(back.distill.alpha, 0.25);
  EXPECT_EQ(back.distill.temperature, 4.0);
  EXPECT_THAT(ParseError(WithData("mode: distill\n")),
              HasSubstr("distill.teacher: must name the teacher's snapshot directory"));
  EXPECT_THAT(ParseError(WithData("mode: distil\n")), HasSubstr("r.yaml:4:7: mode"));
  EXPECT_THAT(ParseError(WithData("distill:\n  alpha: 1.5\n")),
              HasSubstr("r.yaml:5:10: distill.alpha: must be in [0, 1], got 1.5"));
  EXPECT_THAT(ParseError(WithData("distill:\n  temperature: 0\n")),
              HasSubstr("distill.temperature: must be > 0"));
  EXPECT_THAT(ParseError(WithData("mode: distill\ndistill:\n  teacher: t\nparallel:\n  tp: 2\n")),
              HasSubstr("parallel.tp: mode distill needs tp = 1"));
  EXPECT_THAT(ParseError(WithData("distill:\n  teachr: t\n")), HasSubstr("did you mean distill.teacher?"));
}

TEST(RecipeTest, ParallelSection) {
  const Recipe r = ParseOk(WithData("parallel:\n  ep: 2\n  ep_dispatch: hierarchical\n  ranks_per_node: 2\n"));
  EXPECT_EQ(r.parallel.ep, 2);
  EXPECT_EQ(r.parallel.ep_dispatch, EpDispatch::kHierarchical);
  EXPECT_EQ(r.parallel.ranks_per_node, 2);
  EXPECT_EQ(ParseOk(WithData("")).parallel.tp, 1);
  EXPECT_EQ(ParseOk(WithData("parallel:\n  tp: 2\n")).parallel.tp, 2);
  EXPECT_THAT(ParseError(WithData("parallel:\n  tp: 0\n")),
              HasSubstr("r.yaml:5:7: parallel.tp: must be >= 1, got 0"));
  // The default model has 8 experts.
  EXPECT_THAT(ParseError(WithData("parallel:\n  ep: 3\n")),
              HasSubstr("r.yaml:5:7: parallel.ep: must divide model.num_local_experts (8), got 3"));
  EXPECT_THAT(ParseError(WithData("parallel:\n  ep_dispatch: ring\n")),
              HasSubstr("parallel.ep_dispatch"));
}

// Tensor-parallel shape rules live in ResolveLayout (and ResolveVocabSize for vocab_size: auto).
TEST(RecipeTest, TensorParallelLayoutRules) {
  auto with_tp = [&](int64_t tp, std::vector<std::string> sets = {}) {
    sets.push_back("parallel.tp=" + std::to_string(tp));
    return ParseOk(WithData(""), sets);
  };
  // The default model: 4 heads, 2 KV heads, 8 experts.
  auto ok = ResolveLayout(with_tp(2), 4);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->tp(), 2);
  EXPECT_EQ(ok->dp(), 2);
  EXPECT_THAT(std::string(ResolveLayout(with_tp(4), 4).status().message()),
              HasSubstr("parallel.tp: 4 does not divide model.num_key_value_heads (2)"));
  EXPECT_THAT(std::string(ResolveLayout(with_tp(3), 6).status().message()),
              HasSubstr("parallel.tp: 3 does not divide model.num_attention_heads (4)"));
  EXPECT_THAT(std::string(ResolveLayout(with_tp(2, {"model.vocab_size=255"}), 2).status().message()),
              HasSubstr("parallel.tp: 2 does not divide model.vocab_size (255); pad it"));
  EXPECT_THAT(std::string(ResolveLayout(with_tp(2, {"model.intermediate_size=97"}), 2).status().message()),
              HasSubstr("parallel.tp: 2 does not divide model.intermediate_size (97)"));
  EXPECT_THAT(std::string(ResolveLayout(with_tp(2, {"model.moe_intermediate_size=33"}), 2)
                              .status().message()),
              HasSubstr("parallel.tp: 2 does not divide model.moe_intermediate_size (33)"));
  // vocab_size: auto is checked once the tokenizer is known.
  Recipe r = with_tp(2);
  ASSERT_TRUE(r.vocab_size_auto);
  EXPECT_THAT(std::string(ResolveVocabSize(2047, &r).message()),
              HasSubstr("model.vocab_size: auto gives the tokenizer's 2047 ids, which do not split "
                        "over parallel.tp = 2; set model.vocab_size to a multiple of 2"));
  EXPECT_TRUE(ResolveVocabSize(2048, &r).ok());
}

TEST(RecipeTest, MissingRequiredKeys) {
  const std::string none = ParseError("seed: 1\n");
  EXPECT_THAT(none, HasSubstr("r.yaml:1:1: data.tokenizer: missing required key"));
  EXPECT_THAT(none, HasSubstr("r.yaml:1:1: data.shards: missing required key"));
  EXPECT_THAT(ParseError("seed: 1\ndata:\n  tokenizer: t\n"),
              HasSubstr("r.yaml:2:1: data.shards: missing required key"));
  EXPECT_THAT(ParseError(""), HasSubstr("r.yaml:1:1: data.tokenizer: missing required key"));
  EXPECT_THAT(ParseError("data:\n  tokenizer: t\n  shards:\n"),
              HasSubstr("r.yaml:3:3: data.shards: must not be empty"));
}

TEST(RecipeTest, OverridesApply) {
  const Recipe r = ParseOk(
      WithData("optim:\n  lr: 1e-3\n"),
      {"optim.lr=2e-3", "optim.betas=[0.8,0.9]", "seed=7", "sample.prompts=[\"Q: Why\", \"A: \"]",
       "model.vocab_size=300", "data.shards=other/dir",
       "schedule={warmup_steps: 3, decay: constant}", "logging.metrics_file="});
  EXPECT_EQ(r.optim.lr, 2e-3);
  EXPECT_EQ(r.optim.betas[0], 0.8);
  EXPECT_EQ(r.optim.betas[1], 0.9);
  EXPECT_EQ(r.seed, 7u);
  EXPECT_EQ(r.sample.prompts, (std::vector<std::string>{"Q: Why", "A: "}));
  EXPECT_EQ(r.model.vocab_size, 300);
  EXPECT_FALSE(r.vocab_size_auto);
  EXPECT_EQ(r.data.shards, "other/dir");
  EXPECT_EQ(r.schedule.warmup_steps, 3);
  EXPECT_EQ(r.schedule.decay, DecayKind::kConstant);
  EXPECT_EQ(r.logging.metrics_file, "");
  // A later override wins; an override can supply a required key or fix a bad file value.
  EXPECT_EQ(ParseOk(WithData(""), {"seed=1", "seed=2"}).seed, 2u);
  EXPECT_EQ(ParseOk("data:\n  tokenizer: t\n", {"data.shards=s"}).data.shards, "s");
  EXPECT_EQ(ParseOk(WithData("optim:\n  lr: -1\n"), {"optim.lr=0.5"}).optim.lr, 0.5);
  EXPECT_TRUE(
      ParseOk(WithData("model:\n  vocab_size: 10\n"), {"model.vocab_size=auto"}).vocab_size_auto);
}

TEST(RecipeTest, BadOverridesNameTheFlag) {
  const std::string text = WithData("");
  EXPECT_THAT(ParseError(text, {"optim.lrr=1"}),
              HasSubstr("--set optim.lrr: optim.lrr: unknown key; did you mean optim.lr?"));
  EXPECT_THAT(ParseError(text, {"optimizer.lr=1"}),
              HasSubstr("--set optimizer.lr: optimizer.lr: unknown key; did you mean optim?"));
  EXPECT_THAT(ParseError(text, {"seed.x=1"}),
              HasSubstr("--set seed.x: seed.x: seed is a value, not a section"));
  EXPECT_THAT(ParseError(text, {"batch.seq_len=12.5"}),
              HasSubstr("--set batch.seq_len: batch.seq_len: expected an integer, got '12.5'"));
  EXPECT_THAT(ParseError(text, {"optim.lr=-1"}),
              HasSubstr("--set optim.lr: optim.lr: must be > 0, got -1"));
  EXPECT_THAT(ParseError(text, {"optim.betas=[0.9,1.5]"}),
              HasSubstr("--set optim.betas: optim.betas[1]: must be in [0, 1), got 1.5"));
  EXPECT_THAT(ParseError(text, {"schedule.warmup_steps=5000"}),
              HasSubstr("--set schedule.warmup_steps: schedule.warmup_steps: must be <= "
                        "schedule.total_steps"));
  EXPECT_THAT(ParseError(text, {"precision=bf32"}),
              HasSubstr("--set precision: precision: expected one of fp32 | bf16 | fp16"));
  EXPECT_THAT(ParseError(text, {"parallel.zero_stage=5"}),
              HasSubstr("--set parallel.zero_stage: parallel.zero_stage: must be 0, 1, 2 or 3"));
  EXPECT_THAT(ParseError(text, {"optim.lr"}), HasSubstr("--set optim.lr: expected key.path=value"));
  EXPECT_THAT(ParseError(text, {"optim.lr=[1"}),
              HasSubstr("--set optim.lr: optim.lr: cannot parse the value '[1' as YAML"));
  EXPECT_THAT(ParseError(text, {"optim={lr: x}"}),
              HasSubstr("--set optim: optim.lr: expected a number, got 'x'"));
  // A rule broken by the file is still reported at the file's line, even with overrides present.
  EXPECT_THAT(ParseError(WithData("optim:\n  eps: 0\n"), {"seed=3"}),
              HasSubstr("r.yaml:5:8: optim.eps: must be > 0"));
}

TEST(RecipeTest, RecipeToYamlRoundTrips) {
  for (const std::string& text : {std::string(kFullRecipe), WithData("")}) {
    const Recipe r = ParseOk(text);
    const std::string yaml = RecipeToYaml(r);
    const Recipe back = ParseOk(yaml);
    ExpectSameRecipe(back, r);
    EXPECT_EQ(RecipeToYaml(back), yaml);
  }
  // Awkward values survive: strings that look like numbers or keywords, quotes, shortest doubles.
  Recipe r = ParseOk(WithData(""));
  r.data.tokenizer = "123";
  r.data.shards = "true";
  r.sample.prompts = {"", "say \"hi\"\n", "auto", "#x: y"};
  r.optim.lr = 0.1 + 0.2;
  r.optim.eps = 1e-300;
  r.vocab_size_auto = false;
  r.model.vocab_size = 4096;
  const std::string yaml = RecipeToYaml(r);
  EXPECT_THAT(yaml, HasSubstr("lr: 0.30000000000000004"));
  ExpectSameRecipe(ParseOk(yaml), r);
  // Every section appears, defaults included.
  for (const char* key : {"model:", "data:", "optim:", "schedule:", "batch:", "precision: fp32",
                          "logging:", "eval:", "checkpoint:", "sample:", "seed: 1234", "threads: 0",
                          "vocab_size: 4096", "decay: cosine", "zero_stage: 0", "loss_scale:",
                          "activation_checkpointing:", "mode: none", "every: 1"}) {
    EXPECT_THAT(yaml, HasSubstr(key));
  }
}

TEST(RecipeTest, ValidateRecipeForRecipesBuiltInCode) {
  Recipe r;
  r.data.tokenizer = "t";
  r.data.shards = "s";
  EXPECT_TRUE(ValidateRecipe(r).ok());
  r.precision = Precision::kBf16;
  EXPECT_TRUE(ValidateRecipe(r).ok());
  r.loss_scale.backoff_factor = 0;
  r.schedule.warmup_steps = 2000;
  const absl::Status status = ValidateRecipe(r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("schedule.warmup_steps: must be <= schedule.total_steps (1000), got 2000"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("\nloss_scale.backoff_factor: must be in (0, 1), got 0.0"));
}

TEST(RecipeTest, LoadRecipeReadsFiles) {
  const absl::StatusOr<Recipe> missing = LoadRecipe("/nonexistent/recipe.yaml", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/recipe.yaml"));

  const std::string path = std::string(MOETRAIN_SOURCE_DIR) + "/recipes/tiny.yaml";
  const absl::StatusOr<Recipe> tiny = LoadRecipe(path, {"optim.lr=-3"});
  ASSERT_FALSE(tiny.ok());
  EXPECT_THAT(std::string(tiny.status().message()),
              HasSubstr("--set optim.lr: optim.lr: must be > 0"));
}

TEST(RecipeTest, EmbeddedTinyRecipeParsesAndMatchesTheFile) {
  const absl::StatusOr<Recipe> embedded =
      ParseRecipe(std::string(EmbeddedTinyRecipe()), std::string(EmbeddedTinyRecipeName()), {});
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  const absl::StatusOr<Recipe> file =
      LoadRecipe(std::string(MOETRAIN_SOURCE_DIR) + "/recipes/tiny.yaml", {});
  ASSERT_TRUE(file.ok()) << file.status();
  ExpectSameRecipe(*embedded, *file);

  const Recipe& r = *embedded;
  EXPECT_TRUE(r.vocab_size_auto);
  EXPECT_EQ(r.model.hidden_size, 128);
  EXPECT_EQ(r.model.num_hidden_layers, 4);
  EXPECT_EQ(r.model.num_local_experts, 8);
  EXPECT_EQ(r.model.num_experts_per_tok, 2);
  EXPECT_EQ(r.data.tokenizer, "out/tokenizer.model");
  EXPECT_EQ(r.data.shards, "out/fortunes-shards");
  EXPECT_EQ(r.schedule.total_steps, 200);
  EXPECT_EQ(r.batch.seq_len, 128);
  EXPECT_EQ(r.batch.micro_batch, 16);
  EXPECT_EQ(r.sample.prompts.size(), 4u);
  EXPECT_THAT(std::string(EmbeddedTinyRecipeName()), Not(HasSubstr(":")));
}

}  // namespace
}  // namespace moetrain::trainer
