#include "trainer/train_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/logging.h"
#include "core/threads.h"
#include "data/sampler.h"
#include "data/token_shards.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/snapshot_dir.h"
#include "checkpoint/snapshot_reader.h"
#include "checkpoint/snapshot_writer.h"
#include "core/memory_usage.h"
#include "optim/loss_scaler.h"
#include "optim/zero_optimizer.h"
#include "trainer/distill_teacher.h"
#include "trainer/memory_plan.h"
#include "trainer/metrics.h"
#include "trainer/nonfinite_guard.h"
#include "trainer/train_snapshot.h"
#include "trainer/finetune.h"
#include "trainer/train_data.h"
#include "trainer/flops.h"
#include "trainer/lr_schedule.h"
#include "trainer/sampling.h"
#include "trainer/unigram.h"

namespace moetrain::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}


// Calls fn(spec, local view) for every tensor (parameters and buffers) this rank holds, gathering
// each parameter group first (ZeRO-3 keeps only two layers resident). Collective over dp / edp.
absl::Status ForEachHeldTensor(
    const model::Model<float>& model, optim::ZeroOptimizer<float>& zero,
    const std::function<absl::Status(const model::ParamSpec&, const TensorView&)>& fn) {
  for (const model::ParamGroup& g : model.param_groups()) {
    RETURN_IF_ERROR(zero.Materialize(g.index));
    for (const model::ParamUnit& u : g.units)
      for (const model::ParamUnit::Tensor& t : u.tensors)
        RETURN_IF_ERROR(fn(*t.spec, model.Param(t.spec->name)));
  }
  for (const model::ParamSpec& s : model.table().specs())
    if (s.kind == model::ParamKind::kBuffer && model.Holds(s.name))
      RETURN_IF_ERROR(fn(s, model.Param(s.name)));
  return absl::OkStatus();
}

std::vector<size_t> PlanSizes(const MemoryPlanReport& plan) {
  std::vector<size_t> v;
  for (const auto& [what, bytes] : plan.items()) v.push_back(bytes);
  v.push_back(plan.total());
  return v;
}

// values of every world rank (collective; a world of one without groups).
absl::StatusOr<std::vector<std::vector<size_t>>> GatherSizes(parallel::ProcessGroups* groups,
                                                             const std::vector<size_t>& mine) {
  const int world = groups != nullptr ? groups->grid().world() : 1;
  std::vector<int64_t> send(mine.begin(), mine.end()), recv(send.size() * world);
  if (groups != nullptr) {
    RETURN_IF_ERROR(groups->world().AllGather(send.data(), recv.data(), static_cast<int64_t>(send.size()),
                                              DType::kI64));
  } else {
    recv = send;
  }
  std::vector<std::vector<size_t>> out(world);
  for (int r = 0; r < world; ++r)
    out[r].assign(recv.begin() + r * send.size(), recv.begin() + (r + 1) * send.size());
  return out;
}

void LogPerRank(const char* title, const MemoryPlanReport& plan,
                const std::vector<std::vector<size_t>>& by_rank) {
  const size_t n = plan.items().size();
  for (size_t i = 0; i <= n; ++i) {
    const std::string what = i < n ? plan.items()[i].first : "total";
    bool same = true;
    for (const auto& r : by_rank) same = same && r[i] == by_rank[0][i];
    std::string figures;
    if (same) {
      figures = FormatBytes(by_rank[0][i]) + (by_rank.size() > 1 ? " (every rank)" : "");
    } else {
      for (size_t r = 0; r < by_rank.size(); ++r)
        figures += absl::StrCat(r ? " | " : "", "rank ", r, ": ", FormatBytes(by_rank[r][i]));
    }
    MT_LOG(INFO) << title << ": " << what << " " << figures;
  }
}

// "" (start fresh), "auto" (the newest snapshot under checkpoint.dir that verifies; fresh when the
// directory holds none at all; an error when it holds some but none verifies) or a snapshot dir.
absl::StatusOr<std::string> ResolveResume(const std::string& resume, const std::string& root) {
  if (resume.empty() || resume == "none") return std::string();
  if (resume != "auto") {  // the named snapshot must open and verify
    ASSIGN_OR_RETURN(checkpoint::SnapshotReader reader, checkpoint::SnapshotReader::Open(resume));
    RETURN_IF_ERROR(reader.Verify());
    return resume;
  }
  std::vector<std::string> skipped;
  absl::StatusOr<std::string> found = checkpoint::FindLatestValid(root, &skipped);
  for (const std::string& s : skipped) MT_LOG(WARNING) << "resume: skipped " << s;
  if (found.ok()) return found;
  if (absl::IsNotFound(found.status()) && skipped.empty()) {
    MT_LOG(INFO) << "resume auto: no snapshot under " << root << "; starting from step 0";
    return std::string();
  }
  return found.status();
}

// Runs `decide` on world rank 0 only and gives every rank its result: choosing and verifying a
// snapshot reads every checksum once, not once per rank. Other ranks get a short error pointing at
// rank 0's log when it fails.
absl::StatusOr<std::string> DecideOnRank0(parallel::ProcessGroups* groups,
                                          const std::function<absl::StatusOr<std::string>()>& decide) {
  if (groups == nullptr || groups->grid().world() == 1) return decide();
  parallel::Communicator& world = groups->world();
  absl::StatusOr<std::string> mine = world.rank() == 0 ? decide() : std::string();
  int64_t header[2] = {mine.ok() ? 0 : 1, mine.ok() ? static_cast<int64_t>(mine->size()) : 0};
  RETURN_IF_ERROR(world.Broadcast(header, 2, DType::kI64, 0));
  if (header[0] != 0)
    return world.rank() == 0 ? mine.status()
                             : absl::FailedPreconditionError("rank 0 could not choose the snapshot to "
                                                             "load (its log says why)");
  std::string value = world.rank() == 0 ? *mine : std::string(static_cast<size_t>(header[1]), '\0');
  RETURN_IF_ERROR(world.Broadcast(value.data(), header[1], DType::kI8, 0));
  return value;
}

}  // namespace

absl::StatusOr<TrainResult> RunTraining(const Recipe& input_recipe, const TrainOptions& options) {
  Recipe recipe = input_recipe;
  SetNumThreads(recipe.threads);

  // Data: the tokenizer, then (below) the mode's rows (token shards checked against the tokenizer,
  // or fine-tuning JSONL; trainer/train_data.h).
  ASSIGN_OR_RETURN(data::Tokenizer tokenizer, data::Tokenizer::Load(recipe.data.tokenizer));
  RETURN_IF_ERROR(ResolveVocabSize(tokenizer.vocab_size(), &recipe));

  // Layout: dp ranks split the global micro-batch (the tp ranks of a dp rank share its data); a
  // world of one without groups.
  parallel::ProcessGroups* groups = options.groups;
  const int dp = groups != nullptr ? groups->grid().dp() : 1;
  const int dp_rank = groups != nullptr ? groups->coords().dp_rank : 0;
  const int world = groups != nullptr ? groups->grid().world() : 1;
  const bool rank0 = groups == nullptr || groups->rank() == 0;
  if (recipe.batch.micro_batch % dp != 0)
    return absl::InvalidArgumentError(absl::StrCat("batch.micro_batch ", recipe.batch.micro_batch,
                                                   " does not split over dp = ", dp));
  const int64_t B = recipe.batch.micro_batch / dp, S = recipe.batch.seq_len,
                A = recipe.batch.grad_accum;
  data::SamplerOptions so;
  so.seq_len = S;
  so.micro_batch = B;
  so.grad_accum = static_cast<int>(A);
  so.world = dp;
  so.seed = recipe.seed;
  ASSIGN_OR_RETURN(std::unique_ptr<TrainData> train_data,
                   OpenTrainData(recipe, tokenizer, so, recipe.eval.batches * recipe.batch.micro_batch));

  // Memory: model, optimizer and batch buffers, planned before step 1. The runtime baseline (binary,
  // libraries, MPI, tokenizer) is measured here, before any of them exists.
  const size_t baseline_rss = CurrentRssBytes();
  model::ModelParallel mp;
  if (groups != nullptr) {
    mp.dp = &groups->dp();
    mp.ep = &groups->ep();
    mp.edp = &groups->edp();
    mp.tp = &groups->tp();
    mp.dispatch = recipe.parallel.ep_dispatch == EpDispatch::kHierarchical
                      ? parallel::DispatchMode::kHierarchical
                      : parallel::DispatchMode::kFlat;
    mp.ranks_per_node = static_cast<int>(recipe.parallel.ranks_per_node);
  }
  mp.zero_stage = static_cast<int>(recipe.parallel.zero_stage);
  const model::ModelOptions model_options = ModelOptionsFromRecipe(recipe);
  ASSIGN_OR_RETURN(auto model, model::Model<float>::Create(recipe.model, B, S, NumThreads(), mp,
                                                           model_options));
  // Distillation: the frozen teacher, forward-only on the same micro-batches and groups.
  std::unique_ptr<DistillTeacher> teacher;
  uint64_t teacher_fingerprint = 0;
  if (recipe.mode == TrainMode::kDistill) {
    ASSIGN_OR_RETURN(teacher, DistillTeacher::Load(recipe.distill.teacher, tokenizer.checksum(),
                                                   recipe.model.vocab_size, B, S, NumThreads(), mp));
    RETURN_IF_ERROR(model->SetDistillationTarget(teacher->logits(), recipe.distill.alpha,
                                                 recipe.distill.temperature));
    teacher_fingerprint = teacher->WeightsFingerprint();
    MT_LOG(INFO) << "distill: teacher " << teacher->dir() << " ("
                 << teacher->model().table().NumTrainable() << " parameters, "
                 << teacher->model().config().num_hidden_layers << " layers), alpha "
                 << recipe.distill.alpha << ", temperature " << recipe.distill.temperature;
  }
  optim::ZeroOptions zo;
  zo.adam = optim::AdamWConfig{recipe.optim.betas[0], recipe.optim.betas[1], recipe.optim.eps,
                               recipe.optim.weight_decay, recipe.optim.grad_clip};
  zo.compute_dtype = model_options.compute_dtype;
  zo.lr_multiplier = LrMultiplierFromRecipe(recipe);  // fine-tuning: frozen / scaled roles
  optim::ZeroComms zc;
  if (groups != nullptr) zc = {&groups->world(), &groups->dp(), &groups->edp(), &groups->tp()};
  ASSIGN_OR_RETURN(auto optimizer, optim::ZeroOptimizer<float>::Create(model.get(), zo, zc));
  optim::LossScaler scaler = optim::LossScaler::Static();
  if (recipe.precision == Precision::kFp16) {
    ASSIGN_OR_RETURN(scaler, optim::LossScaler::Dynamic(LossScalerConfigFromRecipe(recipe)));
  }
  std::vector<int32_t> tokens(B * S), targets(B * S);
  // Evaluate whole global micro-batches only, so every layout scores the same windows.
  const int64_t eval_windows = train_data->num_eval_rows() / (dp * B) * (dp * B);
  if (eval_windows == 0)
    return absl::FailedPreconditionError(absl::StrCat(
        train_data->val_source(), ": validation split too small for one global micro-batch (",
        dp * B, " sequences of ", S, " tokens; it has ", train_data->num_eval_rows(), ")"));
  std::vector<int32_t> eval_targets_all(eval_windows * S);

  if (groups != nullptr)
    MT_LOG(INFO) << "layout: " << groups->grid().ToString() << "; per-rank micro-batch " << B
                 << "; ZeRO stage " << recipe.parallel.zero_stage;
  MT_LOG(INFO) << "model: " << model->table().NumTrainable() << " parameters ("
               << model->table().size() << " tensors), " << recipe.model.num_hidden_layers
               << " layers, " << recipe.model.num_local_experts << " experts top-"
               << recipe.model.num_experts_per_tok << ", vocab " << recipe.model.vocab_size
               << "; precision " << PrecisionName(recipe.precision) << ", activation checkpointing "
               << ActivationCheckpointingName(model_options.checkpointing);
  MemoryPlanReport plan;
  plan.Add("runtime (measured before planning)", baseline_rss);
  plan.Add(train_data->HostMemory().first, train_data->HostMemory().second);
  for (const auto& [cat, bytes] : model->MemoryPlan()) plan.Add(cat, bytes);
  for (const auto& [cat, bytes] : optimizer->MemoryPlan()) plan.Add(cat, bytes);
  plan.Add("expert dispatch buffers", model->DispatchBufferBytes());
  if (teacher != nullptr) {
    for (const auto& [cat, bytes] : teacher->model().MemoryPlan()) plan.Add("teacher " + cat, bytes);
    plan.Add("teacher expert dispatch buffers", teacher->model().DispatchBufferBytes());
  }
  // Measured outside the arenas but planned here too: the sgemm probe that sets the MFU
  // denominator (three n x n matrices) and, with snapshots on, the host copy of this rank's state
  // (master, m, v of its chunks) handed to the background writer.
  plan.Add("sgemm probe", 3 * size_t{1024} * 1024 * sizeof(float));
  if (recipe.checkpoint.every_steps > 0) {
    size_t state = 0;
    for (const auto& [cat, bytes] : optimizer->MemoryPlan())
      if (cat == "optimizer") state = bytes + bytes / 2;  // m + v, and master of the same size
    plan.Add("snapshot host copy", state);
  }
  plan.Add("batch buffers", 2 * tokens.size() * sizeof(int32_t) + 2 * eval_targets_all.size() * sizeof(int32_t));
  // Per rank: every rank plans the same lines; rank 0 prints them all (one line per item, one
  // figure per rank unless they are all equal).
  ASSIGN_OR_RETURN(std::vector<std::vector<size_t>> plan_by_rank, GatherSizes(groups, PlanSizes(plan)));
  LogPerRank("memory plan", plan, plan_by_rank);
  TrainResult result;
  result.planned_bytes = plan.total();
  if (options.dry_run) return result;

  // Initial state: a snapshot (resume), weights only (init_from), or the seeded init.
  SnapshotRanks ranks;
  if (groups != nullptr)
    ranks = {groups->rank(), groups->coords().dp_rank, groups->edp().rank(), groups->coords().tp_rank};
  int64_t start_step = 0;
  ASSIGN_OR_RETURN(std::string resume_dir, DecideOnRank0(groups, [&] {
                     return ResolveResume(options.resume, recipe.checkpoint.dir);
                   }));
  std::string init_from = InitFromDir(recipe, options.init_from);  // the CLI flag wins
  if (resume_dir.empty() && !init_from.empty()) {
    ASSIGN_OR_RETURN(init_from, DecideOnRank0(groups, [&]() -> absl::StatusOr<std::string> {
                       ASSIGN_OR_RETURN(checkpoint::SnapshotReader r,
                                        checkpoint::SnapshotReader::Open(init_from));
                       RETURN_IF_ERROR(r.Verify());
                       return init_from;
                     }));
  }
  const std::string& load_dir = !resume_dir.empty() ? resume_dir : init_from;
  if (!load_dir.empty()) {  // verified by rank 0 above; reads still check every chunk's checksum
    ASSIGN_OR_RETURN(checkpoint::SnapshotReader reader, checkpoint::SnapshotReader::Open(load_dir));
    const bool resuming = !resume_dir.empty();
    const nlohmann::json& state = reader.meta()["state"];
    if (resuming && state.contains("tokenizer_checksum") &&
        state["tokenizer_checksum"] != tokenizer.checksum())
      return absl::FailedPreconditionError(absl::StrCat(
          load_dir, ": the snapshot was trained with another tokenizer (checksum ",
          state["tokenizer_checksum"].dump(), ", ", recipe.data.tokenizer, " has ", tokenizer.checksum(), ")"));
    RETURN_IF_ERROR(LoadTrainState(reader, *model, *optimizer, resuming));
    if (resuming) {
      start_step = reader.step();
      if (state.contains("loss_scaler") && scaler.dynamic()) {
        const nlohmann::json& ls = state["loss_scaler"];
        RETURN_IF_ERROR(scaler.SetState({ls.value("scale", 1.0), ls.value("good_steps", int64_t{0}),
                                         ls.value("hysteresis_left", int64_t{1})}));
      }
    }
    MT_LOG(INFO) << (resuming ? "resumed from " : "initial weights from ") << load_dir << " (step "
                 << reader.step() << ", written by " << reader.world_size() << " ranks)";
  } else {
    optimizer->InitFromSeed(recipe.seed);  // per-tensor seeds: every layout starts from the same weights
  }
  result.start_step = start_step;

  // Snapshots: every checkpoint.every_steps steps, at the end and when stopped.
  const bool snapshots = recipe.checkpoint.every_steps > 0;
  checkpoint::SnapshotWriter writer(groups != nullptr ? &groups->world() : nullptr,
                                    static_cast<int>(recipe.checkpoint.keep));
  const checkpoint::SnapshotContents contents = ContentsOf(model->table());
  bool commit_pending = false;
  nlohmann::json pending_state;
  int64_t last_saved = start_step;
  auto commit = [&]() -> absl::Status {
    if (!commit_pending) return absl::OkStatus();
    commit_pending = false;
    RETURN_IF_ERROR(writer.Commit(contents, pending_state));
    MT_LOG(INFO) << "snapshot " << writer.final_dir() << " complete";
    return absl::OkStatus();
  };
  auto save = [&](int64_t steps_done) -> absl::Status {
    RETURN_IF_ERROR(commit());  // the previous save first
    const optim::LossScaler::State ls = scaler.state();
    nlohmann::json state = {
        {"step", steps_done},
        {"consumed_samples", steps_done * A * B * dp},
        {"data", {{"seed", recipe.seed}, {"next_step", steps_done}}},
        {"recipe", RecipeToYaml(recipe)},
        {"layout", {{"world", world}, {"dp", dp}, {"tp", model->tp_size()},
                    {"ep", groups != nullptr ? groups->grid().ep() : 1},
                    {"zero_stage", recipe.parallel.zero_stage}}},
        {"precision", std::string(PrecisionName(recipe.precision))},
        {"loss_scaler", {{"scale", ls.scale}, {"good_steps", ls.good_steps},
                         {"hysteresis_left", ls.hysteresis_left}}},
        {"tokenizer_checksum", tokenizer.checksum()}};
    std::vector<checkpoint::ShardRecord> records = CollectShardRecords(*model, *optimizer, ranks);
    RETURN_IF_ERROR(writer.Begin(recipe.checkpoint.dir, steps_done));
    pending_state = std::move(state);
    commit_pending = true;
    last_saved = steps_done;
    // A local write failure is recorded by the writer and reported to every rank by the collective
    // Commit (so no rank leaves the others waiting in it); nothing is published then.
    if (recipe.checkpoint.async) {
      writer.StartShardWrite(std::move(records), {}).IgnoreError();
      return absl::OkStatus();
    }
    writer.WriteShard(records, {}).IgnoreError();
    return commit();
  };
  // An async save completes (is committed) at the first step boundary where every rank's shard
  // write has finished: one tiny AllReduce per step while a write is in flight.
  auto poll_commit = [&]() -> absl::Status {
    if (!commit_pending) return absl::OkStatus();
    double done = writer.ShardWriteDone() ? 1.0 : 0.0;
    if (groups != nullptr)
      RETURN_IF_ERROR(groups->world().AllReduce(&done, &done, 1, DType::kF64, parallel::ReduceOp::kMin));
    return done > 0 ? commit() : absl::OkStatus();
  };

  // Baselines and the machine's limit.
  {
    std::vector<int32_t> scratch(eval_windows * S);
    train_data->FillEval(0, eval_windows, scratch.data(), eval_targets_all.data());
  }
  result.unigram_val_loss = train_data->UnigramValLoss(
      eval_targets_all.data(), static_cast<int64_t>(eval_targets_all.size()), recipe.model.vocab_size);
  const double peak = MeasureSgemmPeakFlops();
  const double flops_per_token = TrainingFlopsPerToken(recipe.model, S);
  MT_LOG(INFO) << "data (" << TrainModeName(recipe.mode) << "): " << train_data->Summary()
               << "; evaluating on " << eval_windows << " val rows; unigram baseline val loss "
               << absl::StrFormat("%.4f", result.unigram_val_loss);
  if (recipe.mode == TrainMode::kFinetune)
    MT_LOG(INFO) << "fine-tuning lr multipliers: " << DescribeLrMultipliers(recipe);
  MT_LOG(INFO) << absl::StrFormat("sgemm peak %.1f GFLOP/s on %d threads; %.1f MFLOP per token",
                                  peak / 1e9, NumThreads(), flops_per_token / 1e6);

  MetricsWriter metrics;  // rank 0 speaks for the run
  if (rank0)
    RETURN_IF_ERROR(metrics.Open(recipe.logging.metrics_file, recipe.logging.prometheus_file,
                                 start_step, recipe.schedule.total_steps));
  {
    // Model layer index of each MoE layer: the rows of every step's expert_load.
    std::vector<int64_t> moe_layers;
    for (int64_t l = 0; l < recipe.model.num_hidden_layers; ++l)
      if (recipe.model.IsMoeLayer(l)) moe_layers.push_back(l);
    metrics.Write({{"event", "start"}, {"recipe", RecipeToYaml(recipe)},
                   {"unigram_val_loss", result.unigram_val_loss}, {"sgemm_peak_flops", peak},
                   {"start_step", start_step}, {"total_steps", recipe.schedule.total_steps},
                   {"moe_layers", moe_layers},
                   {"num_experts", recipe.model.num_local_experts}});
  }

  auto evaluate = [&]() {
    double sum = 0;
    int64_t count = 0;
    // Each global micro-batch of dp * B windows is split over the dp ranks; the model sums the
    // loss over dp, so every rank sees the global figure.
    // Validation reports the student's plain CE (no teacher run for it).
    if (teacher != nullptr) MT_CHECK_OK(model->SetDistillationTarget(nullptr, 0, 1));
    for (int64_t first = 0; first + dp * B <= eval_windows; first += dp * B) {
      train_data->FillEval(first + dp_rank * B, B, tokens.data(), targets.data());
      model::LossBreakdown l = model->Forward(tokens.data(), targets.data());
      sum += l.ce * l.num_targets;
      count += l.num_targets;
    }
    if (teacher != nullptr)
      MT_CHECK_OK(model->SetDistillationTarget(teacher->logits(), recipe.distill.alpha,
                                               recipe.distill.temperature));
    return count > 0 ? sum / count : 0.0;
  };

  const int64_t total_steps = recipe.schedule.total_steps;
  NonFiniteGuard nonfinite_guard(recipe.optim.max_consecutive_skips);
  const auto run_start = Clock::now();
  auto window_start = run_start;
  int64_t window_tokens = 0;
  // Tokens per expert over a step's micro-batches (global), sized once.
  ExpertLoad counts = model->expert_counts();
  for (int64_t step = start_step; step < total_steps; ++step) {
    optimizer->BeginStep();
    double ce = 0, aux = 0, kl = 0, teacher_ce = 0;
    // A fingerprint of the global batch (sum over its sequences of a hash of (global index,
    // tokens)), summed over dp: equal across layouts iff they trained on the same data.
    double batch_hash = 0;
    for (auto& layer : counts) std::fill(layer.begin(), layer.end(), 0);
    for (int micro = 0; micro < A; ++micro) {
      train_data->Fill(step, micro, dp_rank, tokens.data(), targets.data());
      for (int64_t i = 0; i < B; ++i) {
        uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(train_data->GlobalIndex(step, micro, dp_rank, i));
        for (int64_t t = 0; t < S; ++t) h = (h ^ static_cast<uint32_t>(tokens[i * S + t])) * 1099511628211ull;
        batch_hash += static_cast<double>(h >> 24);  // < 2^40: sums stay exact in a double
      }
      if (teacher != nullptr) teacher_ce += teacher->Forward(tokens.data(), targets.data()).ce / A;
      model::LossBreakdown l = model->Forward(tokens.data(), targets.data());
      model->Backward(scaler.scale() / A);
      ce += l.ce / A;
      aux += l.aux / A;
      kl += l.kl / A;
      AccumulateExpertLoad(model->expert_counts(), &counts);
    }
    if (groups != nullptr)
      RETURN_IF_ERROR(groups->dp().AllReduce(&batch_hash, &batch_hash, 1, DType::kF64));
    const double lr = LearningRate(recipe.schedule, recipe.optim.lr, step);
    const double loss_scale = scaler.scale();
    ASSIGN_OR_RETURN(optim::ZeroStepStats st, optimizer->Step(lr, loss_scale));
    // A non-finite gradient (fp16 overflow, or a real NaN) changed nothing; the scaler backs off.
    if (scaler.Update(st.skipped)) {
      ++result.skipped_steps;
      MT_LOG(WARNING) << "step " << step + 1 << ": non-finite gradient at loss scale " << loss_scale
                      << "; step skipped (parameters and optimizer state unchanged), scale now "
                      << scaler.scale();
      metrics.WriteSkippedStep(step + 1, loss_scale, scaler.scale());
    } else if (!RouterFrozen(recipe)) {  // a frozen router keeps its aux-loss-free bias too
      model->UpdateRouterBias();
    }
    // A diverged run (K counted skips in a row) stops here, naming the first bad tensor.
    if (nonfinite_guard.Record(st.skipped, loss_scale, scaler))
      return NonFiniteAbortError(*optimizer, model->table(),
                                 groups != nullptr ? &groups->world() : nullptr, step + 1,
                                 nonfinite_guard.consecutive());
    RETURN_IF_ERROR(poll_commit());
    window_tokens += A * B * S * dp;  // global tokens
    result.steps_done = step + 1;
    result.final_train_loss = ce;

    const bool last = step + 1 == total_steps;
    if ((step + 1) % recipe.logging.every_steps == 0 || last || step == 0) {
      const auto now = Clock::now();
      const double tok_s = window_tokens / Seconds(window_start, now);
      const double mfu = tok_s * flops_per_token / (peak * world);  // each rank measured its own peak
      const double elapsed = Seconds(run_start, now);
      const double eta = elapsed / (step + 1 - start_step) * (total_steps - step - 1);
      const double imbalance = LoadImbalance(counts);
      MT_LOG(INFO) << absl::StrFormat(
          "step %d/%d | loss %.4f | aux %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | MFU %.1f%% | "
          "load max/mean %.2f | ETA %s",
          step + 1, total_steps, ce, aux, lr, st.grad_norm, tok_s, 100 * mfu, imbalance,
          FormatDuration(eta));
      StepMetrics sm;
      sm.step = step + 1;
      sm.loss = ce;
      sm.aux_loss = aux;
      sm.lr = lr;
      sm.grad_norm = st.grad_norm;
      sm.tokens_per_s = tok_s;
      sm.mfu = mfu;
      sm.eta_s = eta;
      sm.batch_hash = batch_hash;
      sm.elapsed_s = elapsed;
      sm.loss_scale = loss_scale;
      sm.experts_skipped = st.experts_skipped;
      sm.expert_load = counts;  // a copy on logging steps only
      metrics.WriteStep(sm);
      if (teacher != nullptr) {
        MT_LOG(INFO) << absl::StrFormat("step %d/%d | distill kl %.5f | teacher loss %.4f", step + 1,
                                        total_steps, kl, teacher_ce);
        metrics.Write({{"event", "distill"}, {"step", step + 1}, {"kl", kl},
                       {"teacher_loss", teacher_ce}, {"alpha", recipe.distill.alpha},
                       {"temperature", recipe.distill.temperature}});
      }
      window_start = Clock::now();
      window_tokens = 0;
    }
    // Ranks stop together: one rank's Ctrl-C (or all of them, from a terminal) ends the run at the
    // same step everywhere.
    // 1 = stop (Ctrl-C), 2 = preempted (SIGUSR1/SIGTERM); the max over ranks wins.
    double stop_flag = options.stop != nullptr && options.stop->load() ? 1.0 : 0.0;
    if (options.preempt != nullptr && options.preempt->load()) stop_flag = 2.0;
    if (groups != nullptr)
      RETURN_IF_ERROR(groups->world().AllReduce(&stop_flag, &stop_flag, 1, DType::kF64,
                                                parallel::ReduceOp::kMax));
    const bool stopping = stop_flag > 0;
    const bool preempted = stop_flag > 1;
    // A preemption saves whenever there is a checkpoint.dir, so the requeued job resumes here.
    if (((snapshots && ((step + 1) % recipe.checkpoint.every_steps == 0 || last || stopping)) ||
         (preempted && !recipe.checkpoint.dir.empty())) &&
        last_saved != step + 1)
      RETURN_IF_ERROR(save(step + 1));
    if (!stopping && !last && recipe.eval.every_steps > 0 && (step + 1) % recipe.eval.every_steps == 0) {
      const double val = evaluate();
      MT_LOG(INFO) << absl::StrFormat("eval step %d | val loss %.4f | unigram %.4f", step + 1, val,
                                      result.unigram_val_loss);
      metrics.WriteEval(step + 1, val, result.unigram_val_loss);
      window_start = Clock::now();
      window_tokens = 0;
    }
    if (stopping) {
      result.interrupted = true;
      MT_LOG(WARNING) << "interrupted: stopped cleanly after step " << step + 1 << " of " << total_steps;
      metrics.Write({{"event", "interrupted"}, {"step", step + 1}});
      RETURN_IF_ERROR(commit());
      result.preempted = preempted;
      result.preempt_saved = preempted && last_saved == step + 1;
      if (preempted)
        MT_LOG(WARNING) << "preempted after step " << step + 1
                        << (result.preempt_saved ? "; snapshot saved under " + recipe.checkpoint.dir
                                                 : "; NOTHING SAVED (checkpoint.dir is empty)");
      return result;
    }
  }

  // A run resumed with no steps left (total_steps <= the snapshot's step) writes the state it
  // loaded to checkpoint.dir, unless that already holds this step: the same state resharded into
  // this run's layout (an offline reshard; the resharding tests compare it with the source).
  if (snapshots && !resume_dir.empty() && start_step >= total_steps &&
      !std::filesystem::exists(std::filesystem::path(recipe.checkpoint.dir) /
                               checkpoint::StepDirName(start_step)))
    RETURN_IF_ERROR(save(start_step));
  RETURN_IF_ERROR(commit());
  if (teacher != nullptr) {  // the teacher is read-only: its weights must be bitwise as loaded
    if (teacher->WeightsFingerprint() != teacher_fingerprint)
      return absl::InternalError(absl::StrCat(recipe.distill.teacher,
                                              ": the teacher's weights changed during training"));
    MT_LOG(INFO) << "distill: teacher weights unchanged (fingerprint "
                 << absl::StrFormat("%016x", teacher_fingerprint) << ")";
  }
  result.final_val_loss = evaluate();
  MT_LOG(INFO) << absl::StrFormat(
      "final | val loss %.4f | unigram baseline %.4f | %.4f nats below the baseline | %s",
      result.final_val_loss, result.unigram_val_loss, result.unigram_val_loss - result.final_val_loss,
      FormatDuration(Seconds(run_start, Clock::now())));
  metrics.WriteFinal(result.steps_done, result.final_val_loss, result.unigram_val_loss);
  result.peak_rss_bytes = PeakRssBytes();
  ASSIGN_OR_RETURN(std::vector<std::vector<size_t>> peaks,
                   GatherSizes(groups, {result.peak_rss_bytes, result.planned_bytes}));
  for (size_t r = 0; r < peaks.size(); ++r)
    MT_LOG(INFO) << "memory: rank " << r << " measured peak RSS " << FormatBytes(peaks[r][0])
                 << " vs plan " << FormatBytes(peaks[r][1])
                 << absl::StrFormat(" (%+.1f%%)", 100.0 * (static_cast<double>(peaks[r][0]) /
                                                               peaks[r][1] - 1.0));
  metrics.Write({{"event", "memory"}, {"rank", ranks.world}, {"planned_bytes", result.planned_bytes},
                 {"peak_rss_bytes", result.peak_rss_bytes}});

  // Samples: a batch-1 inference copy of the trained weights (walking the one ParamTable).
  if (!recipe.sample.prompts.empty() && recipe.sample.max_new_tokens > 0) {
    // Expert-parallel ranks generate in lockstep (same prompts, seeds and hence tokens).
    model::ModelParallel infer_mp = mp;
    infer_mp.dp = nullptr;
    infer_mp.edp = nullptr;
    infer_mp.zero_stage = 0;
    ASSIGN_OR_RETURN(auto infer, model::Model<float>::Create(recipe.model, 1, S, NumThreads(), infer_mp,
                                                             model_options));
    RETURN_IF_ERROR(ForEachHeldTensor(*model, *optimizer, [&](const model::ParamSpec& spec,
                                                              const TensorView& src) {
      TensorView dst = infer->Param(spec.name);
      std::memcpy(dst.data(), src.data(), src.nbytes());
      return absl::OkStatus();
    }));
    SamplingOptions sopt;
    sopt.temperature = recipe.sample.temperature;
    sopt.top_p = recipe.sample.top_p;
    sopt.max_new_tokens = std::min<int64_t>(recipe.sample.max_new_tokens, S - 1);
    sopt.stop_token = tokenizer.eos_id();
    for (size_t i = 0; i < recipe.sample.prompts.size(); ++i) {
      const std::string& prompt = recipe.sample.prompts[i];
      // A document starts after an eos in the training stream, so prompts do too.
      std::vector<int32_t> ids = {tokenizer.eos_id()};
      for (int32_t t : tokenizer.Encode(prompt)) ids.push_back(t);
      if (static_cast<int64_t>(ids.size()) >= S) ids.resize(S - 1);
      sopt.seed = recipe.sample.seed + i;
      std::vector<int32_t> out = Generate(infer.get(), ids, sopt);
      std::vector<int32_t> all(ids.begin() + 1, ids.end());
      all.insert(all.end(), out.begin(), out.end());
      result.samples.push_back(tokenizer.Decode(all));
      metrics.Write({{"event", "sample"}, {"prompt", prompt}, {"text", result.samples.back()}});
    }
  }
  if (!options.dump_params_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.dump_params_dir, ec);
    std::vector<checkpoint::NamedTensor> tensors;
    // With tensor parallelism every rank dumps FULL tensors, gathered over tp.
    const int tp = model->tp_size();
    std::vector<std::vector<float>> full;
    full.reserve(model->table().size());
    RETURN_IF_ERROR(ForEachHeldTensor(*model, *optimizer, [&](const model::ParamSpec& spec,
                                                              const TensorView& local) -> absl::Status {
      full.emplace_back(spec.numel());
      if (!spec.IsTpSplit(tp)) {
        std::memcpy(full.back().data(), local.data(), local.nbytes());
      } else {
        std::vector<float> gathered(spec.numel());
        RETURN_IF_ERROR(groups->tp().AllGather(local.data(), gathered.data(), local.numel(), DType::kF32));
        for (int r = 0; r < tp; ++r)
          model::InsertShard(spec, tp, r, gathered.data() + r * local.numel(), full.back().data());
      }
      tensors.push_back({spec.name, TensorView(full.back().data(), Shape(spec.shape), DType::kF32),
                         DType::kF32});
      return absl::OkStatus();
    }));
    const int rank = groups != nullptr ? groups->rank() : 0;
    RETURN_IF_ERROR(checkpoint::WriteSafetensors(
        absl::StrCat(options.dump_params_dir, "/rank", rank, ".safetensors"), tensors, {}));
  }
  return result;
}

}  // namespace moetrain::trainer
