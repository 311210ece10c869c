// moetrain: the command-line entry point. The only place a Status becomes an exit code.
//
//   moetrain data tokenizer --input PATH... --vocab-size N --out tok.model
//   moetrain data prepare   --input PATH... --tokenizer tok.model --out DIR
//   moetrain train [RECIPE.yaml] [--set key.path=value]... [--dry-run] [--print-recipe]
//   moetrain generate (--hf DIR | --ckpt DIR) (--prompt TEXT | --prompt-tokens "1 2 3")
//                     [--tokenizer tok.model] [...]
//   moetrain eval (--hf DIR | --ckpt DIR) --input FILE (--tokenizer tok.model | --tokens)
//                 [--window N] [--dump-logits OUT.safetensors]
//   moetrain inspect DIR
//   moetrain export --ckpt DIR --out OUT [--dtype f32|bf16|fp16] [--quantize int8] [...]
//   moetrain import --hf DIR --out ROOT [--recipe RECIPE.yaml]
//   moetrain plot METRICS.jsonl --out DIR [--run N]
//   moetrain experts METRICS.jsonl|SNAPSHOT_DIR [--last N]
#include <csignal>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "apps/checkpoint_commands.h"
#include "apps/infer_commands.h"
#include "apps/metrics_commands.h"
#include "core/logging.h"
#include "data/corpus.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "parallel/collective_watchdog.h"
#include "parallel/launcher.h"
#include "parallel/process_groups.h"
#include "trainer/embedded_recipe.h"
#include "trainer/layout.h"
#include "trainer/recipe.h"
#include "trainer/train_loop.h"

namespace {

using namespace moetrain;

std::atomic<bool> g_stop{false};

void OnSigint(int) {
  g_stop = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills immediately
}

// Preemption: SLURM sends SIGUSR1 (--signal=USR1@T, forwarded by slurm/train.sbatch) before the
// time limit or a preemption, and SIGTERM on scancel / scontrol requeue. The run saves a snapshot
// at the next step boundary and exits with kRequeueExitCode, which slurm/train.sbatch answers with
// `scontrol requeue` (slurm/README.md). 75 is EX_TEMPFAIL (sysexits.h): "try again later".
constexpr int kRequeueExitCode = 75;
std::atomic<bool> g_preempt{false};

void OnPreemptSignal(int) { g_preempt = true; }

struct CorpusFlags {
  std::vector<std::string> inputs;
  std::string format = "auto";
  std::string separator = "%";
  std::string field = "text";
  std::string column = "text";

  void Add(CLI::App* app) {
    app->add_option("--input", inputs, "corpus files or directories (.txt, .jsonl, .csv)")
        ->required();
    app->add_option("--format", format, "auto | txt | jsonl | csv (auto: by file extension)")
        ->capture_default_str();
    app->add_option("--separator", separator,
                    "txt: a line holding only this ends a document (\"\" = blank-line paragraphs)")
        ->capture_default_str();
    app->add_option("--field", field, "jsonl: the text field")->capture_default_str();
    app->add_option("--column", column, "csv: the text column")->capture_default_str();
  }
  absl::StatusOr<data::CorpusOptions> Options() const {
    data::CorpusOptions o;
    ASSIGN_OR_RETURN(o.format, data::ParseCorpusFormat(format));
    o.txt_separator = separator;
    o.jsonl_field = field;
    o.csv_column = column;
    return o;
  }
};

int Fail(const absl::Status& s) {
  // An empty message would hide the cause: fall back to the whole status (code included).
  std::fprintf(stderr, "moetrain: error: %s\n",
               s.message().empty() ? s.ToString().c_str() : std::string(s.message()).c_str());
  return 1;
}

int RunTrain(const parallel::Launch& launch, const std::string& recipe_path,
             const std::vector<std::string>& overrides, bool dry_run, bool print_recipe,
             const std::string& dump_params, const std::string& resume, const std::string& init_from);

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moetrain: Mixture-of-Experts LLM training (CPU today; see docs/ for the roadmap)"};
  app.require_subcommand(1);

  CLI::App* data_cmd = app.add_subcommand("data", "tokenizer training and corpus preparation");
  data_cmd->require_subcommand(1);

  CLI::App* tok_cmd = data_cmd->add_subcommand("tokenizer", "train a SentencePiece BPE tokenizer");
  CorpusFlags tok_corpus;
  tok_corpus.Add(tok_cmd);
  data::TokenizerTrainOptions tok_opts;
  tok_cmd->add_option("--vocab-size", tok_opts.vocab_size, "vocabulary size")->capture_default_str();
  tok_cmd->add_option("--out", tok_opts.out_model, "output .model path (a .vocab is written beside it)")
      ->required();
  tok_cmd->add_option("--threads", tok_opts.num_threads, "trainer threads (0 = all cores)");

  CLI::App* prep_cmd = data_cmd->add_subcommand("prepare", "tokenize a corpus into token shards");
  CorpusFlags prep_corpus;
  prep_corpus.Add(prep_cmd);
  data::PrepareOptions prep_opts;
  prep_cmd->add_option("--tokenizer", prep_opts.tokenizer_model, "SentencePiece .model")->required();
  prep_cmd->add_option("--out", prep_opts.out_dir, "output shard directory")->required();
  prep_cmd->add_option("--val-fraction", prep_opts.val_fraction, "share of documents held out")
      ->capture_default_str();
  prep_cmd->add_option("--seed", prep_opts.split_seed, "train/val split seed")->capture_default_str();
  prep_cmd->add_option("--threads", prep_opts.num_threads, "encoding threads (0 = all cores)");

  CLI::App* train_cmd = app.add_subcommand("train", "train from a YAML recipe");
  std::string recipe_path;
  std::vector<std::string> overrides;
  bool dry_run = false, print_recipe = false;
  std::string dump_params, resume, init_from;
  train_cmd->add_option("recipe", recipe_path,
                        "recipe YAML (default: the embedded recipes/tiny.yaml)");
  train_cmd->add_option("--set", overrides, "override a recipe value: key.path=value (repeatable)");
  train_cmd->add_flag("--dry-run", dry_run, "validate, plan memory and print the plan; no training");
  train_cmd->add_flag("--print-recipe", print_recipe, "print the fully resolved recipe and exit");
  train_cmd->add_option("--dump-params", dump_params,
                        "write each rank's final parameters to DIR/rank<R>.safetensors (fp32, "
                        "full tensors; a test and debugging aid)");
  train_cmd->add_option("--resume", resume,
                        "auto: continue from the newest snapshot under checkpoint.dir that verifies "
                        "(fresh start if there is none); or a snapshot directory; none: start fresh");
  CLI::Option* init_opt = train_cmd->add_option("--init-from", init_from,
                        "take the weights of a snapshot (any layout, e.g. from `moetrain import`) "
                        "with a fresh optimizer at step 0 (fine-tuning; wins over finetune.init_from)")
      ->check(CLI::ExistingDirectory);
  init_opt->excludes("--resume");

  CLI::App* gen_cmd = app.add_subcommand("generate", "generate text with a KV cache (one process)");
  apps::GenerateFlags gen_flags;
  gen_flags.Add(gen_cmd);
  CLI::App* eval_cmd = app.add_subcommand("eval", "loss and perplexity of a text or token file");
  apps::EvalFlags eval_flags;
  eval_flags.Add(eval_cmd);
  CLI::App* inspect_cmd =
      app.add_subcommand("inspect", "describe a snapshot and verify every checksum");
  apps::InspectFlags inspect_flags;
  inspect_flags.Add(inspect_cmd);
  CLI::App* export_cmd = app.add_subcommand("export", "write a snapshot as a Hugging Face folder");
  apps::ExportFlags export_flags;
  export_flags.Add(export_cmd);
  CLI::App* import_cmd =
      app.add_subcommand("import", "turn a Hugging Face folder into a snapshot to fine-tune from");
  apps::ImportFlags import_flags;
  import_flags.Add(import_cmd);

  CLI::App* plot_cmd = app.add_subcommand("plot", "render a metrics file as PNGs (python3 + matplotlib)");
  apps::PlotFlags plot_flags;
  plot_flags.Add(plot_cmd);
  CLI::App* experts_cmd = app.add_subcommand(
      "experts", "expert utilisation, imbalance and dead experts (metrics file or snapshot)");
  apps::ExpertsFlags experts_flags;
  experts_flags.Add(experts_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (tok_cmd->parsed()) {
    auto corpus = tok_corpus.Options();
    if (!corpus.ok()) return Fail(corpus.status());
    tok_opts.inputs = tok_corpus.inputs;
    tok_opts.corpus = *corpus;
    absl::Status s = data::TrainTokenizer(tok_opts);
    if (!s.ok()) return Fail(s);
    MT_LOG(INFO) << "wrote " << tok_opts.out_model;
    return 0;
  }
  if (prep_cmd->parsed()) {
    auto corpus = prep_corpus.Options();
    if (!corpus.ok()) return Fail(corpus.status());
    prep_opts.inputs = prep_corpus.inputs;
    prep_opts.corpus = *corpus;
    auto meta = data::PrepareTokenShards(prep_opts);
    if (!meta.ok()) return Fail(meta.status());
    MT_LOG(INFO) << "wrote " << prep_opts.out_dir;
    return 0;
  }
  if (gen_cmd->parsed()) {
    absl::Status s = apps::RunGenerate(gen_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (eval_cmd->parsed()) {
    absl::Status s = apps::RunEval(eval_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (inspect_cmd->parsed()) {
    absl::Status s = apps::RunInspect(inspect_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (export_cmd->parsed()) {
    absl::Status s = apps::RunExport(export_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (import_cmd->parsed()) {
    absl::Status s = apps::RunImport(import_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (plot_cmd->parsed()) {
    absl::Status s = apps::RunPlot(plot_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (experts_cmd->parsed()) {
    absl::Status s = apps::RunExperts(experts_flags);
    return s.ok() ? 0 : Fail(s);
  }
  if (train_cmd->parsed()) {
    // Under mpirun / srun every rank runs this; alone it is a world of one without MPI.
    auto launch = parallel::Launcher::Init(&argc, &argv);
    if (!launch.ok()) return Fail(launch.status());
    // Installed before anything slow, so an early signal never kills the process (the default
    // action of SIGUSR1) but ends the run after its first step.
    std::signal(SIGUSR1, OnPreemptSignal);
    std::signal(SIGTERM, OnPreemptSignal);
    const int rc = RunTrain(*launch, recipe_path, overrides, dry_run, print_recipe, dump_params,
                            resume, init_from);
    absl::Status fin = parallel::Launcher::Finalize();
    // Never leave peers hanging -- except after a preemption, which every rank agreed on.
    if (rc != 0 && rc != kRequeueExitCode && launch->world_size > 1) parallel::Launcher::AbortJob(rc);
    if (!fin.ok()) return Fail(fin);
    return rc;
  }
  return 0;
}

namespace {
int RunTrain(const parallel::Launch& launch, const std::string& recipe_path,
             const std::vector<std::string>& overrides, bool dry_run, bool print_recipe,
             const std::string& dump_params, const std::string& resume, const std::string& init_from) {
  {
    absl::StatusOr<trainer::Recipe> recipe =
        recipe_path.empty()
            ? trainer::ParseRecipe(std::string(trainer::EmbeddedTinyRecipe()),
                                   std::string(trainer::EmbeddedTinyRecipeName()), overrides)
            : trainer::LoadRecipe(recipe_path, overrides);
    if (!recipe.ok()) return Fail(recipe.status());
    if (print_recipe) {
      if (launch.rank == 0) std::cout << trainer::RecipeToYaml(*recipe);
      return 0;
    }
    // Every collective from here on is timed (process group creation included).
    if (launch.world_size > 1)
      parallel::CollectiveWatchdog::Global().Configure(recipe->parallel.collective_timeout_s, launch.rank);
    // The layout is checked against the world size before any collective.
    auto grid = trainer::ResolveLayout(*recipe, launch.world_size);
    if (!grid.ok()) return Fail(grid.status());
    std::unique_ptr<parallel::ProcessGroups> groups;
    if (launch.world_size > 1) {
      auto g = parallel::ProcessGroups::Create(launch, *grid);
      if (!g.ok()) return Fail(g.status());
      groups = std::make_unique<parallel::ProcessGroups>(std::move(*g));
    }
    MT_LOG(INFO) << "recipe: " << (recipe_path.empty() ? trainer::EmbeddedTinyRecipeName() : recipe_path);
    std::signal(SIGINT, OnSigint);
    trainer::TrainOptions opts;
    opts.stop = &g_stop;
    opts.preempt = &g_preempt;
    opts.dry_run = dry_run;
    opts.groups = groups.get();
    opts.dump_params_dir = dump_params;
    opts.resume = resume;
    opts.init_from = init_from;
    auto result = trainer::RunTraining(*recipe, opts);
    if (!result.ok()) return Fail(result.status());
    if (!result->samples.empty() && launch.rank == 0) {
      std::printf("\n=== samples (top-p %.2f, temperature %.2f) ===\n", recipe->sample.top_p,
                  recipe->sample.temperature);
      for (const std::string& s : result->samples) std::printf("--- %s\n", s.c_str());
    }
    if (result->preempted && result->preempt_saved) return kRequeueExitCode;
    return result->interrupted ? 130 : 0;
  }
}
}  // namespace
