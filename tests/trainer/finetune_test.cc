// Fine-tuning mode in the trainer: the recipe's mode / finetune section (values, defaults, errors
// with file:line:col, the YAML round trip), the role -> LR multiplier mapping (freeze_router,
// freeze_non_expert, per-role values), and the masked loss: on SFT rows the model's cross-entropy
// is the float64 mean of -log softmax(logits)[target] over the response targets only.
#include "trainer/finetune.h"

#include <cmath>
#include <string>
#include <vector>

#include "data/sft_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/model.h"
#include "model/param_role.h"
#include "tests/testing/model_configs.h"
#include "trainer/recipe.h"

namespace moetrain::trainer {
namespace {

using ::testing::HasSubstr;

constexpr char kFinetune[] = R"(mode: finetune
data:
  tokenizer: t.model
finetune:
  train_file: sft.jsonl
  val_file: val.jsonl
  prompt_field: question
  response_field: answer
  init_from: snap/step-00000010
  freeze_router: true
  lr_multipliers:
    attention: 0.5
    embeddings: 0
)";

std::string ParseError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<Recipe> r = ParseRecipe(text, "ft.yaml", overrides);
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(FinetuneRecipe, SectionParsesAndRoundTrips) {
  absl::StatusOr<Recipe> r = ParseRecipe(kFinetune, "ft.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->mode, TrainMode::kFinetune);
  EXPECT_EQ(r->data.shards, "");  // not needed in finetune mode
  EXPECT_EQ(r->finetune.train_file, "sft.jsonl");
  EXPECT_EQ(r->finetune.val_file, "val.jsonl");
  EXPECT_EQ(r->finetune.prompt_field, "question");
  EXPECT_EQ(r->finetune.response_field, "answer");
  EXPECT_EQ(r->finetune.init_from, "snap/step-00000010");
  EXPECT_TRUE(r->finetune.freeze_router);
  EXPECT_FALSE(r->finetune.freeze_non_expert);
  EXPECT_EQ(r->finetune.lr_multipliers.attention, 0.5);
  EXPECT_EQ(r->finetune.lr_multipliers.embeddings, 0.0);
  EXPECT_EQ(r->finetune.lr_multipliers.experts, 1.0);  // default
  const std::string yaml = RecipeToYaml(*r);
  EXPECT_THAT(yaml, HasSubstr("mode: finetune"));
  absl::StatusOr<Recipe> back = ParseRecipe(yaml, "round-trip");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(RecipeToYaml(*back), yaml);
  EXPECT_EQ(back->finetune.init_from, r->finetune.init_from);
  EXPECT_EQ(back->finetune.lr_multipliers.attention, 0.5);
  // Pretrain stays the default, and still needs data.shards.
  absl::StatusOr<Recipe> pre = ParseRecipe("data:\n  tokenizer: t\n  shards: s\n", "p.yaml");
  ASSERT_TRUE(pre.ok());
  EXPECT_EQ(pre->mode, TrainMode::kPretrain);
  EXPECT_THAT(ParseError("data:\n  tokenizer: t\n"),
              HasSubstr("data.shards: missing required key"));
}

TEST(FinetuneRecipe, ErrorsNameTheKey) {
  EXPECT_THAT(ParseError("mode: finetune\ndata:\n  tokenizer: t\n"),
              HasSubstr("finetune.train_file: must not be empty in finetune mode"));
  EXPECT_THAT(
      ParseError(kFinetune, {"finetune.lr_multipliers.router=-1"}),
      HasSubstr("--set finetune.lr_multipliers.router: finetune.lr_multipliers.router: must be "
                "finite and >= 0"));
  EXPECT_THAT(ParseError(std::string(kFinetune) + "  val_fraction: 1.5\n", {"finetune.val_file="}),
              HasSubstr("ft.yaml:14:17: finetune.val_fraction: must be in (0, 1)"));
  EXPECT_THAT(ParseError(kFinetune, {"finetune.response_field=question"}),
              HasSubstr("finetune.response_field: must differ from prompt_field"));
  EXPECT_THAT(ParseError("mode: finetuning\n"), HasSubstr("ft.yaml:1:7: mode: expected one of "
                                                          "pretrain | finetune | distill"));
  EXPECT_THAT(ParseError("mode: distill\ndata:\n  tokenizer: t\n"),
              HasSubstr("distill.teacher: must name the teacher's snapshot directory when mode is distill"));
  EXPECT_THAT(ParseError(kFinetune, {"finetune.freeze_routr=true"}),
              HasSubstr("did you mean finetune.freeze_router?"));
}

TEST(FinetuneRecipe, RoleMultipliers) {
  Recipe r = *ParseRecipe(kFinetune, "ft.yaml");
  using model::ParamRole;
  EXPECT_EQ(RoleLrMultiplier(r, ParamRole::kRouter), 0.0);  // freeze_router wins over router: 1
  EXPECT_EQ(RoleLrMultiplier(r, ParamRole::kAttention), 0.5);
  EXPECT_EQ(RoleLrMultiplier(r, ParamRole::kEmbeddings), 0.0);
  EXPECT_EQ(RoleLrMultiplier(r, ParamRole::kExperts), 1.0);
  EXPECT_TRUE(RouterFrozen(r));
  r.finetune.freeze_router = false;
  r.finetune.lr_multipliers.router = 0.25;
  EXPECT_EQ(RoleLrMultiplier(r, ParamRole::kRouter), 0.25);
  EXPECT_FALSE(RouterFrozen(r));
  r.finetune.freeze_non_expert = true;
  r.finetune.lr_multipliers.shared_experts = 2.0;
  for (ParamRole role : model::kAllParamRoles) {
    const double want = role == ParamRole::kExperts         ? 1.0
                        : role == ParamRole::kSharedExperts ? 2.0
                                                            : 0.0;
    EXPECT_EQ(RoleLrMultiplier(r, role), want) << model::ParamRoleName(role);
  }
  // The optimizer's per-tensor function agrees, through the ParamTable names.
  model::ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.first_k_dense_replace = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.num_shared_experts = 1;
  c.balancing = "bias";
  const auto fn = LrMultiplierFromRecipe(r);
  ASSERT_TRUE(fn);
  int trained = 0;
  const model::ParamTable table = model::ParamTable::Build(c);
  for (const model::ParamSpec& s : table.specs()) {
    const double m = fn(s);
    if (s.name.find(".experts.") != std::string::npos) {
      EXPECT_EQ(m, 1.0) << s.name;
    } else if (s.name.find("shared_experts") != std::string::npos) {
      EXPECT_EQ(m, 2.0) << s.name;
    } else {
      EXPECT_EQ(m, 0.0) << s.name;
    }
    trained += m > 0;
  }
  EXPECT_EQ(trained, 4 * 3 + 3);  // one MoE layer: 4 experts x (w1, w2, w3) + shared w1, w2, w3
  // Pretrain mode: no multipliers at all; the CLI --init-from wins over finetune.init_from.
  Recipe pre = r;
  pre.mode = TrainMode::kPretrain;
  EXPECT_FALSE(LrMultiplierFromRecipe(pre));
  EXPECT_EQ(InitFromDir(pre, ""), "");
  EXPECT_EQ(InitFromDir(r, ""), "snap/step-00000010");
  EXPECT_EQ(InitFromDir(r, "cli"), "cli");
}

TEST(FinetuneLoss, PromptTargetsCarryNoLoss) {
  model::ModelConfig c = moetrain::testing::TinyOptimizerConfig();
  c.vocab_size = 40;
  const int64_t B = 3, T = 12, V = c.vocab_size;
  std::vector<data::SftExample> ex = {{{5, 6, 7}, {8, 9}, 1},
                                      {{10}, {11, 12, 13, 14}, 2},
                                      {{15, 16, 17, 18, 19}, {20, 21, 22, 23, 24, 25, 26, 27}, 3}};
  data::SftOptions o;
  o.seq_len = T;
  auto d = data::SftDataset::FromExamples(ex, 2, o, "mem");
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (int i = 0; i < B; ++i) d->FillRow(i, tokens.data() + i * T, targets.data() + i * T);
  auto model = model::Model<float>::Create(c, B, T, 1, {}, {});
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->InitParams(3);
  const model::LossBreakdown l = (*model)->Forward(tokens.data(), targets.data());
  // float64 reference from the logits, over response targets only (the last example is truncated:
  // x has 2 + 5 + 8 = 15 > T + 1 tokens, so its closing eos and last response tokens are cut).
  const float* logits = (*model)->logits();
  double sum = 0;
  int64_t n = 0;
  for (int i = 0; i < B; ++i) {
    const int64_t P = static_cast<int64_t>(ex[i].prompt.size());
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = i * T + t;
      if (t + 1 <= P) {
        EXPECT_EQ(targets[row], model::kIgnoreIndex) << "prompt target " << i << ":" << t;
        continue;
      }
      if (targets[row] == model::kIgnoreIndex) continue;  // padding
      double mx = -1e300, se = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(logits[row * V + v]));
      for (int64_t v = 0; v < V; ++v) se += std::exp(logits[row * V + v] - mx);
      sum += mx + std::log(se) - logits[row * V + targets[row]];
      ++n;
    }
  }
  EXPECT_EQ(n, (2 + 1) + (4 + 1) + (T - 5));  // responses + eos; the truncated one keeps T - P
  EXPECT_EQ(l.num_targets, n);
  EXPECT_NEAR(l.ce, sum / n, 1e-5 * std::max(1.0, sum / n));
  // The same rows with the prompt targets NOT masked give a different loss: the mask matters.
  std::vector<int32_t> unmasked = targets;
  for (int i = 0; i < B; ++i)
    for (int64_t t = 0; t + 1 <= static_cast<int64_t>(ex[i].prompt.size()); ++t)
      unmasked[i * T + t] = tokens[i * T + t + 1];
  const model::LossBreakdown u = (*model)->Forward(tokens.data(), unmasked.data());
  EXPECT_GT(u.num_targets, l.num_targets);
  EXPECT_NE(u.ce, l.ce);
}

}  // namespace
}  // namespace moetrain::trainer
