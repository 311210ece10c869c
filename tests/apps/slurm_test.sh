#!/usr/bin/env bash
# A real one-node SLURM cluster (munge + slurmctld + slurmd, slurm/local-cluster.sh) runs
# slurm/train.sbatch with 2 tasks (expert parallel, ep=2): the job must finish and its per-step losses
# must equal a single-process run of the same recipe. Then preemption: a larger job (80 steps,
# snapshots only on a signal) gets SIGUSR1 in its batch shell mid-run (scancel --signal=USR1
# --batch); train.sbatch forwards it, the ranks save a snapshot and exit 75, the script requeues the
# job, the rerun resumes ("resumed from") and finishes, and its final loss equals (to the last
# digit) that of the same job run without interruption. Skips (77) when not root, SLURM is missing
# or its daemons cannot start here.
# Usage: slurm_test.sh MOETRAIN SOURCE_DIR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BIN=$1 SRC=$2
if [ "$(id -u)" -ne 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "SKIP: needs root, slurm-wlm and munge"; exit 77
fi
WORK=$(mktemp -d /tmp/moetrain-slurm.XXXXXX)
started=0
if ! sinfo -h >/dev/null 2>&1; then
  "$SRC/slurm/local-cluster.sh" start "$WORK/run" || { echo "SKIP: the SLURM daemons did not start"; exit 77; }
  started=1
fi
cleanup() { [ $started -eq 1 ] && "$SRC/slurm/local-cluster.sh" stop "$WORK/run"; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
colour_corpus 300 > corpus.txt
mt_prepare_data "$BIN" corpus.txt 300 || exit 1
ARGS=(--set data.tokenizer="$WORK/tok.model" --set data.shards="$WORK/shards" --set parallel.ep=2
      --set batch.micro_batch=4 --set batch.seq_len=32 --set schedule.total_steps=8
      --set schedule.warmup_steps=2 --set optim.lr=3e-4 --set logging.every_steps=1
      --set model.hidden_size=32 --set model.moe_intermediate_size=32 --set model.num_hidden_layers=2
      --set model.max_position_embeddings=64 --set 'sample.prompts=[]' --set threads=1)
"$BIN" train "${ARGS[@]}" --set parallel.ep=1 --set logging.metrics_file="$WORK/single.jsonl" >single.log 2>&1 \
  || { echo "FAIL: single run"; tail single.log; exit 1; }
MOETRAIN="$BIN" timeout 300 sbatch --wait --ntasks=2 --output="$WORK/job.out" \
  "$SRC/slurm/train.sbatch" "${ARGS[@]}" --set logging.metrics_file="$WORK/slurm.jsonl" >/dev/null
rc=$?
grep -q "layout: world=2" job.out && [ $rc -eq 0 ] || { echo "FAIL: job rc=$rc"; tail -20 job.out; exit 1; }
series() { grep '"event":"step"' "$1" | grep -o '"loss":[-0-9.e+]*' | sed 's/.*://'; }
series single.jsonl > a; series slurm.jsonl > b
[ "$(wc -l < b)" -eq 8 ] || { echo "FAIL: $(wc -l < b) step lines from the SLURM job"; exit 1; }
paste a b | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad = 1 } END { exit bad }' \
  && echo "PASS: SLURM job (2 tasks, ep=2) matches the single-process loss curve" \
  || { echo "FAIL: losses differ"; paste a b; exit 1; }

# ---- preemption -> snapshot -> requeue -> resume
# Larger sizes so that 80 steps take several seconds and the signal lands mid-run.
PRE=(--set data.tokenizer="$WORK/tok.model" --set data.shards="$WORK/shards" --set parallel.ep=2
     --set batch.micro_batch=8 --set batch.seq_len=64 --set schedule.total_steps=80
     --set schedule.warmup_steps=2 --set optim.lr=3e-4 --set logging.every_steps=1
     --set model.hidden_size=64 --set model.moe_intermediate_size=64 --set model.num_hidden_layers=2
     --set model.max_position_embeddings=64 --set 'sample.prompts=[]' --set threads=1
     --set checkpoint.every_steps=0)
MOETRAIN="$BIN" timeout 300 sbatch --wait --ntasks=2 --output="$WORK/ref.out" "$SRC/slurm/train.sbatch" \
  "${PRE[@]}" --set checkpoint.dir="$WORK/ck-ref" --set logging.metrics_file="$WORK/ref.jsonl" >/dev/null \
  || { echo "FAIL: the uninterrupted job"; tail -20 ref.out; exit 1; }
jid=$(MOETRAIN="$BIN" sbatch --parsable --ntasks=2 --output="$WORK/pre.out" "$SRC/slurm/train.sbatch" \
  "${PRE[@]}" --set checkpoint.dir="$WORK/ck" --set logging.metrics_file="$WORK/pre.jsonl")
jid=${jid%%;*}
# Up to 3 minutes: the job may wait for the node to finish cleaning up after the previous one.
for _ in $(seq 1 1800); do grep -q "step 20/" pre.out 2>/dev/null && break; sleep 0.1; done
grep -q "step 20/" pre.out || { echo "FAIL: job $jid did not reach step 20"; scontrol show job "$jid" | head -5
                                tail pre.out; scancel "$jid"; exit 1; }
scancel --signal=USR1 --batch "$jid"
state=
for _ in $(seq 1 180); do
  state=$(scontrol show job "$jid" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 1
done
restarts=$(scontrol show job "$jid" -o | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
saved=$(grep -o 'preempted after step [0-9]*' pre.out | head -1 | grep -o '[0-9]*$')
resumed=$(grep -o 'resumed from [^ ]*' pre.out | head -1)
echo "job $jid: state $state, restarts ${restarts:-?}; snapshot at step ${saved:-none}; ${resumed:-no resume}"
[ "$state" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] && [ -n "$saved" ] && [ "$saved" -lt 80 ] \
  && grep -q "requeueing job $jid" pre.out && [ "$resumed" = "resumed from $WORK/ck/step-$(printf %08d "$saved")" ] \
  || { echo "FAIL: preempt/requeue/resume"; tail -40 pre.out; scancel "$jid" 2>/dev/null; exit 1; }
last_loss() { grep '"event":"step"' "$1" | tail -1 | grep -o '"loss":[-0-9.e+]*'; }
steps() { grep '"event":"step"' "$1" | grep -o '"step":[0-9]*' | cut -d: -f2 | xargs; }
# The rerun appends to the same metrics file: together the two runs log every step exactly once.
a=$(last_loss ref.jsonl) b=$(last_loss pre.jsonl)
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$(steps pre.jsonl)" = "$(seq -s ' ' 1 80)" ] \
  && echo "PASS: preempted at step $saved, requeued, resumed; final $b equals the uninterrupted run's" \
  || { echo "FAIL: final loss $b vs uninterrupted $a; steps logged: $(steps pre.jsonl)"; exit 1; }
