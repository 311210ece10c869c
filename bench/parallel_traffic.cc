// Communication per training step, measured by the communicators, next to the analytic count for
// the layout; plus tokens/s. Run under mpirun:
//   mpirun -np 4 bench/parallel_traffic [ep] [steps] [flat|hierarchical] [ranks_per_node] [zero_stage]
//
// The optimizer is optim::ZeroOptimizer (stage 0 by default), which synchronises gradients per unit
// of the flat layout (model/param_groups.h: per group, one dense unit padded to dp ways and one unit
// per local expert padded to edp ways; docs/zero.md). Analytic payload bytes per step and rank (fp32,
// e = 4, one micro-batch, MoE layers Lm, experts E, tokens per rank N = b*S, top-k k, hidden C):
//   sync(g)     = [dp > 1] dense_padded(g)*e + [edp > 1] (active local experts of g) * expert_padded*e
//                 (an expert that received no token anywhere is not communicated: sparse updates)
//   all_reduce:   stage 0: sum_g sync(g)
//               + loss stats  (3 + 2E + Lm*E) * 8          (if dp > 1; Model::Forward)
//               + grad norm   8                            (if world > 1; one world all-reduce)
//   reduce_scatter (stages 1-3): sum_g sync(g)  (the payload of a reduce-scatter is the whole unit)
//   all_gather:   stages 1-2: sum_g sync(g)      (updated chunks back into the model)
//                 stage 3: sum_g gathers(g) * full(g), full(g) = sync(g) with every local expert (a
//                 gather does not know which experts will get tokens); gathers(L) = 1 (the embedding
//                 group stays resident); a layer is gathered for its forward and again for its
//                 backward, except the last two layers, which still sit in the two rotating buffers
//                 when backward starts: gathers(l) = 1 + [l < L-2] (ZeroOptimizer::EnsureResident).
//   all_to_all_v: per MoE layer (if ep > 1): counts 4E (Prepare) + rows 4 * N*k*C*e (dispatch +
//                 combine, forward and backward)
// (A rank's payload includes the rows it keeps for its own experts; bus bytes exclude them.)
// Measured and analytic figures are summed over ranks and printed per rank: per rank, combine sends
// back the rows that rank RECEIVED, which depends on routing, and active experts differ per rank;
// the group totals are exact.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "core/threads.h"
#include "model/model.h"
#include "optim/zero_optimizer.h"
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
  const int zero_stage = argc > 5 ? std::atoi(argv[5]) : 0;
  if (zero_stage < 0 || zero_stage > 3) {
    std::fprintf(stderr, "parallel_traffic: zero_stage %d is not 0, 1, 2 or 3\n", zero_stage);
    return 1;
  }
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
  mp.zero_stage = zero_stage;
  mp.edp = &groups->edp();
  auto m = model::Model<float>::Create(c, b, S, 0, mp);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  model::Model<float>& model = **m;
  auto opt = optim::ZeroOptimizer<float>::Create(
      &model, {}, {&groups->world(), &groups->dp(), &groups->edp(), &groups->tp()});
  if (!opt.ok()) {
    std::fprintf(stderr, "%s\n", opt.status().ToString().c_str());
    return 1;
  }
  (*opt)->InitFromSeed(1);

  // Per group: bytes of its dense units and number of its local expert units that take part in
  // collectives (groups of one do not communicate); every expert unit has the same padded size.
  const int64_t L = c.num_hidden_layers;
  std::vector<int64_t> dense_bytes(L + 1, 0), num_expert_units(L + 1, 0);
  int64_t expert_unit_bytes = -1;
  for (const model::ParamGroup& g : model.param_groups()) {
    for (const model::ParamUnit& u : g.units) {
      if (u.expert < 0) {
        if (dp > 1) dense_bytes[g.index] += u.padded * 4;
        continue;
      }
      if (grid->edp() == 1) continue;
      if (expert_unit_bytes >= 0 && expert_unit_bytes != u.padded * 4) {
        std::fprintf(stderr, "parallel_traffic: expert units differ in size; the analytic count "
                             "assumes one size\n");
        return 1;
      }
      expert_unit_bytes = u.padded * 4;
      ++num_expert_units[g.index];
    }
  }
  expert_unit_bytes = std::max<int64_t>(expert_unit_bytes, 0);
  std::mt19937 rng(1234 + groups->coords().dp_rank);
  std::vector<int32_t> tokens(b * S), targets(b * S);
  double seconds = 0;
  int64_t experts_updated = 0;  // this rank's expert units updated, summed over the counted steps
  for (int step = 0; step <= steps; ++step) {  // step 0 warms up and is not counted
    if (step == 1) groups->ResetCounters();
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % c.vocab_size);
    for (auto& t : targets) t = static_cast<int32_t>(rng() % c.vocab_size);
    auto t0 = std::chrono::steady_clock::now();
    (*opt)->BeginStep();
    model.Forward(tokens.data(), targets.data());
    model.Backward();
    auto st = (*opt)->Step(1e-4);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
      return 1;
    }
    if (step > 0) {
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      experts_updated += st->experts_updated;
    }
  }
  const parallel::CommCounters got = groups->TotalCounters();
  const int64_t E = c.num_local_experts, Lm = c.NumMoeLayers(), N = b * S, k = c.num_experts_per_tok;
  // This rank's analytic bytes over the counted steps (see the header).
  int64_t dense_sync = 0, gather3 = 0;
  for (int64_t g = 0; g <= L; ++g) {
    dense_sync += dense_bytes[g];
    const int64_t gathers = g == L ? 1 : 1 + (g < L - 2 ? 1 : 0);
    gather3 += gathers * (dense_bytes[g] + num_expert_units[g] * expert_unit_bytes);
  }
  const int64_t sync = steps * dense_sync + experts_updated * expert_unit_bytes;
  const int64_t ar = (zero_stage == 0 ? sync : 0) +
                     steps * ((dp > 1 ? A * (3 + 2 * E + Lm * E) * 8 : 0) + (world > 1 ? 8 : 0));
  const int64_t rs = zero_stage >= 1 ? sync : 0;
  const int64_t ag = zero_stage == 3 ? steps * gather3 : zero_stage >= 1 ? sync : 0;
  const int64_t a2a = ep > 1 ? steps * A * Lm * (4 * E + 4 * N * k * c.hidden_size * 4) : 0;
  // Sum over ranks: a rank's combine returns the rows IT received (routing dependent), but over the
  // group every row goes out and comes back, so the group total is exact.
  const parallel::DispatchTraffic traffic = model.DispatchTrafficTotal();  // incl. warm-up step
  double totals[12] = {static_cast<double>(got.all_reduce.payload_bytes),
                       static_cast<double>(got.reduce_scatter.payload_bytes),
                       static_cast<double>(got.all_gather.payload_bytes),
                       static_cast<double>(got.all_to_all_v.payload_bytes),
                       static_cast<double>(ar), static_cast<double>(rs), static_cast<double>(ag),
                       static_cast<double>(a2a),
                       static_cast<double>(traffic.inter_node_bytes),
                       static_cast<double>(traffic.intra_node_bytes),
                       static_cast<double>(traffic.inter_node_messages),
                       static_cast<double>(experts_updated)};
  groups->ResetCounters();
  if (!groups->world().AllReduce(totals, totals, 12, DType::kF64).ok()) return 1;
  double tok_s = global_b * S * steps / seconds;
  if (launch->rank == 0 && ep > 1) {
    std::printf("  expert rows, %s dispatch, %d ranks/node: inter-node %.0f B/step, intra-node %.0f "
                "B/step, inter-node messages %.1f/step (group totals)\n",
                hierarchical ? "hierarchical" : "flat", ranks_per_node, totals[8] / (steps + 1),
                totals[9] / (steps + 1), totals[10] / (steps + 1));
  }
  if (launch->rank == 0) {
    std::printf("layout %s, ZeRO %d | %.0f tokens/s (global) | expert units updated %.0f/step (all ranks)\n",
                grid->ToString().c_str(), zero_stage, tok_s, totals[11] / steps);
    // Exact comparison of the group totals (integers well below 2^53); printed per step and rank.
    auto line = [&](const char* name, int i) {
      const double measured = totals[i], analytic = totals[i + 4];
      std::printf("  %-14s measured %12.0f B/step  analytic %12.0f B/step  %s\n", name,
                  measured / steps / world, analytic / steps / world,
                  measured == analytic ? "exact" : "MISMATCH");
    };
    line("all_reduce", 0);
    line("reduce_scatter", 1);
    line("all_gather", 2);
    if (hierarchical) {
      std::printf("  all_to_all_v runs on node / cross-node sub-communicators (see the line above)\n");
    } else {
      line("all_to_all_v", 3);
    }
  }
  groups->ResetCounters();
  (void)parallel::Launcher::Finalize();
  return 0;
}
