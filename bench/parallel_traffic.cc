// Communication per training step, measured by the communicators, next to the analytic count for
// the layout; plus tokens/s. Run under mpirun:  mpirun -np 4 bench/parallel_traffic [ep] [steps]
//
// Analytic payload bytes per step and rank (fp32, dropless, grad_accum A, MoE layers Lm, experts E,
// tokens per rank per micro-step N = b*S, top-k k, hidden C, element size e = 4):
//   all_reduce:   grad sync   dense_numel*e (if dp > 1) + local_expert_numel*e (if edp > 1)
//               + loss stats  A * (3 + 2E + Lm*E) * 8          (if dp > 1; Model::Forward)
//               + grad norm   8                                 (if ep > 1; expert part of the norm)
//   all_to_all_v: per micro-step and MoE layer (if ep > 1): counts 4E (Prepare) + rows
//                 4 * N*k*C*e (dispatch + combine, forward and backward)
// (A rank's payload includes the rows it keeps for its own experts; bus bytes exclude them.)
// Measured figures are averaged over ranks: per rank, combine sends back the rows that rank
// RECEIVED, which depends on routing; the group total is exact.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "core/threads.h"
#include "model/model.h"
#include "optim/adamw_optimizer.h"
#include "optim/grad_sync.h"
#include "parallel/launcher.h"
#include "parallel/process_groups.h"
#include "trainer/flops.h"

using namespace moetrain;

int main(int argc, char** argv) {
  auto launch = parallel::Launcher::Init(&argc, &argv);
  if (!launch.ok()) {
    std::fprintf(stderr, "%s\n", launch.status().ToString().c_str());
    return 1;
  }
  const int ep = argc > 1 ? std::atoi(argv[1]) : 1;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 3;
  // Optional: "hierarchical" and ranks per node, to compare the node-crossing traffic of the modes.
  const bool hierarchical = argc > 3 && std::string(argv[3]) == "hierarchical";
  const int ranks_per_node = argc > 4 ? std::atoi(argv[4]) : 0;
  const int world = launch->world_size;
  auto grid = parallel::RankGrid::Create(world, 1, ep);
  if (!grid.ok()) {
    std::fprintf(stderr, "%s\n", grid.status().ToString().c_str());
    return 1;
  }
  auto groups = parallel::ProcessGroups::Create(*launch, *grid);
  if (!groups.ok()) return 1;
  SetNumThreads(std::max(1, 2 / launch->local_size));

  // bench-small (docs/PERF.md), global micro-batch 8 split over dp.
  model::ModelConfig c;
  c.vocab_size = 8192;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.max_position_embeddings = 256;
  const int64_t S = 256, global_b = 8, A = 1, dp = grid->dp(), b = global_b / dp;
  model::ModelParallel mp{&groups->dp(), &groups->ep(),
                          hierarchical ? parallel::DispatchMode::kHierarchical
                                       : parallel::DispatchMode::kFlat,
                          ranks_per_node};
  auto m = model::Model<float>::Create(c, b, S, 0, mp);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  model::Model<float>& model = **m;
  model.InitParams(1);
  auto opt = optim::AdamWOptimizer<float>::Create(&model, {}, &groups->ep());
  auto sync = optim::GradSync<float>::Create(&model, &groups->dp(), &groups->edp());
  if (!opt.ok() || !sync.ok()) return 1;

  int64_t dense = 0, local_expert = 0;
  for (const auto& s : model.table().specs()) {
    if (!model.HasGrad(s.name)) continue;
    (s.kind == model::ParamKind::kExpert ? local_expert : dense) += s.numel();
  }
  std::mt19937 rng(1234 + groups->coords().dp_rank);
  std::vector<int32_t> tokens(b * S), targets(b * S);
  double seconds = 0;
  for (int step = 0; step <= steps; ++step) {  // step 0 warms up and is not counted
    if (step == 1) groups->ResetCounters();
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % c.vocab_size);
    for (auto& t : targets) t = static_cast<int32_t>(rng() % c.vocab_size);
    auto t0 = std::chrono::steady_clock::now();
    model.ZeroGrads();
    model.Forward(tokens.data(), targets.data());
    model.Backward();
    if (!(*sync)->Run().ok()) return 1;
    (*opt)->Step(1e-4);
    if (step > 0) seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const parallel::CommCounters got = groups->TotalCounters();
  const int64_t E = c.num_local_experts, Lm = c.NumMoeLayers(), N = b * S, k = c.num_experts_per_tok;
  const int64_t ar = (dp > 1 ? dense * 4 : 0) + (grid->edp() > 1 ? local_expert * 4 : 0) +
                     (dp > 1 ? A * (3 + 2 * E + Lm * E) * 8 : 0) + (ep > 1 ? 8 : 0);
  const int64_t a2a = ep > 1 ? A * Lm * (4 * E + 4 * N * k * c.hidden_size * 4) : 0;
  // Sum over ranks: a rank's combine returns the rows IT received (routing dependent), but over the
  // group every row goes out and comes back, so the group total is exact.
  const parallel::DispatchTraffic traffic = model.DispatchTrafficTotal();  // incl. warm-up step
  double totals[5] = {static_cast<double>(got.all_reduce.payload_bytes),
                      static_cast<double>(got.all_to_all_v.payload_bytes),
                      static_cast<double>(traffic.inter_node_bytes),
                      static_cast<double>(traffic.intra_node_bytes),
                      static_cast<double>(traffic.inter_node_messages)};
  groups->ResetCounters();
  if (!groups->world().AllReduce(totals, totals, 5, DType::kF64).ok()) return 1;
  const double per_step_ar = totals[0] / steps / world;
  const double per_step_a2a = totals[1] / steps / world;
  double tok_s = global_b * S * steps / seconds;
  if (launch->rank == 0 && ep > 1) {
    std::printf("  expert rows, %s dispatch, %d ranks/node: inter-node %.0f B/step, intra-node %.0f "
                "B/step, inter-node messages %.1f/step (group totals)\n",
                hierarchical ? "hierarchical" : "flat", ranks_per_node, totals[2] / (steps + 1),
                totals[3] / (steps + 1), totals[4] / (steps + 1));
  }
  if (launch->rank == 0) {
    std::printf("layout %s | %.0f tokens/s (global)\n", grid->ToString().c_str(), tok_s);
    std::printf("  all_reduce   measured %12.0f B/step  analytic %12lld B/step  ratio %.4f\n",
                per_step_ar, static_cast<long long>(ar), ar > 0 ? per_step_ar / ar : 1.0);
    if (hierarchical) {
      std::printf("  all_to_all_v runs on node / cross-node sub-communicators (see the line above)\n");
    } else {
      std::printf("  all_to_all_v measured %12.0f B/step  analytic %12lld B/step  ratio %.4f\n",
                  per_step_a2a, static_cast<long long>(a2a), a2a > 0 ? per_step_a2a / a2a : 1.0);
    }
  }
  groups->ResetCounters();
  (void)parallel::Launcher::Finalize();
  return 0;
}
