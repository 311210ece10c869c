# Shared prologue of the end-to-end shell tests in tests/apps/ (sourced, not run). Each test does
#   set -uo pipefail
#   . "$(dirname "$0")/lib.sh"
# and gets:
#   mt_workdir NAME        WORK=$(mktemp -d /tmp/moetrain-NAME.XXXXXX), removed on exit, and cd there
#                          (a test with more to clean up sets its own EXIT trap afterwards).
#   fails pass fail        the failure counter and the "PASS: ..." / "FAIL: ..." lines;
#   mt_finish              prints "N failure(s)" and exits non-zero when N > 0.
#   expect_fail_with LABEL NEEDLE CMD...   CMD must exit non-zero and print NEEDLE (a fixed string).
#   words_corpus N         N generated '%'-separated "fortunes" from a fixed word list, on stdout.
#   colour_corpus N        N lines of ten colour words, '%'-separated, on stdout (a smaller vocabulary).
#   mt_prepare_data BIN CORPUS VOCAB [prepare args...]   tok.model and shards/ in the current directory;
#                          on failure a FAIL line and the tool's log, and status 1.

fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mt_finish() {
  echo "$fails failure(s)"
  exit $((fails > 0))
}

mt_workdir() {
  WORK=$(mktemp -d "/tmp/moetrain-$1.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  cd "$WORK" || exit 1
}

expect_fail_with() {  # expect_fail_with "label" "needle" cmd...
  local label=$1 needle=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$needle" <<<"$out"; then pass "$label"; else
    fail "$label (rc=$rc, wanted '$needle' in:)"; echo "$out" | tail -5; fi
}

# The word list is global: finetune_e2e_test.sh builds its prompt / response pairs from it too.
words=(the a cat dog sees runs over under quick lazy fox jumps and or but never always computer
       program bug fixes code test it is was will be tomorrow today luck friend)
words_corpus() {  # line i has 4..12 words picked by a fixed mixing of i and the word position j
  local i j n line
  for i in $(seq 1 "$1"); do
    n=$(( (i * 7) % 9 + 4 )); line=""
    for j in $(seq 1 $n); do line+="${words[$(( (i * 31 + j * 17 + i * j) % ${#words[@]} ))]} "; done
    echo "$line."; echo "%"
  done
}

colour_corpus() {
  local colours=(red green blue cyan magenta yellow black white orange purple brown pink grey olive navy teal)
  local i j line
  for i in $(seq 1 "$1"); do
    line=""; for j in $(seq 1 10); do line+="${colours[$(( (i * 11 + j * 5 + i * j) % ${#colours[@]} ))]} "; done
    echo "$line"; echo "%"
  done
}

mt_prepare_data() {  # mt_prepare_data BIN CORPUS VOCAB [extra `data prepare` args...]
  local bin=$1 corpus=$2 vocab=$3; shift 3
  "$bin" data tokenizer --input "$corpus" --vocab-size "$vocab" --out tok.model >log.tok 2>&1 \
    || { fail "tokenizer"; tail -5 log.tok; return 1; }
  "$bin" data prepare --input "$corpus" --tokenizer tok.model --out shards "$@" >log.prep 2>&1 \
    || { fail "prepare"; tail -5 log.prep; return 1; }
}
