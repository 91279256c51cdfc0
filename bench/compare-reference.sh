#!/usr/bin/env bash
# The same work timed side by side, in one run, against PyTorch on this machine (issue 9, item 5):
#   1. Wanda prune of c4-llama-7m (NSAMPLES x SEQLEN calibration windows, seed 0, 50% unstructured), whole-process
#      wall time: `llm-prune prune` vs bench/compare-reference.py (the reference's prune_wanda, fed the same windows);
#      the two masks are compared position by position.
#   2. WikiText-2 perplexity at SEQLEN over the first WINDOWS windows: tokens/s of each evaluation loop, and both
#      perplexities.
# PyTorch is Debian's python3-torch with libopenblas0-pthread, installed here with apt-get when missing (never a
# dependency of the package); the run stops unless torch really loaded OpenBLAS (without it torch falls back to the
# reference BLAS, ~50x slower, and every ratio would lie).
#   bash bench/compare-reference.sh            # env: LLM_PRUNE_SHARED, THREADS (project --threads), TORCH_THREADS,
#                                              #      NSAMPLES (32), SEQLEN (512), WINDOWS (100), PYTHON (/usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=$(realpath "${LLM_PRUNE_SHARED:-../shared}")
MODEL=$SHARED/models/c4-llama-7m
C4=$SHARED/data/c4/c4-train.00000-of-01024.head1000.jsonl
WIKI=$SHARED/data/wikitext-2-raw-v1/test.jsonl
NSAMPLES=${NSAMPLES:-32} SEQLEN=${SEQLEN:-512} WINDOWS=${WINDOWS:-100}
PYTHON=${PYTHON:-/usr/bin/python3} # Debian's python3: python3-torch is installed for it, not for a pyenv one
THREADS_FLAG=()
[ -n "${THREADS:-}" ] && THREADS_FLAG=(--threads "$THREADS")
for f in "$MODEL/config.json" "$C4" "$WIKI"; do [ -e "$f" ] || { echo "missing $f (set LLM_PRUNE_SHARED)" >&2; exit 1; }; done

need=()
for p in python3-torch libopenblas0-pthread; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing ${need[*]} (apt-get)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
BLAS=$("$PYTHON" bench/compare-reference.py blas) || { echo "torch did not load OpenBLAS: $BLAS" >&2; exit 1; }

npx tsc -p tsconfig.json --noEmit false # dist/ with bench/: both sides start as plain processes (no on-the-fly TypeScript)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "token ids (project tokenizer and sampler) ..." >&2
node dist/bench/compare-reference-ids.js --model "$MODEL" --calibration "$C4" --wikitext "$WIKI" \
  --nsamples "$NSAMPLES" --seqlen "$SEQLEN" >"$TMP/ids.json"

now() { date +%s.%N; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "prune: project ..." >&2
t0=$(now)
node dist/lib/cli.js prune "${THREADS_FLAG[@]}" --model "$MODEL" --method wanda --sparsity 0.5 --calibration "$C4" \
  --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --seed 0 --out "$TMP/project-wanda" >"$TMP/project-prune.json" 2>"$TMP/project-prune.err"
t1=$(now)
echo "prune: PyTorch ..." >&2
"$PYTHON" bench/compare-reference.py prune "$MODEL" "$TMP/ids.json" "$TMP/torch-wanda.pt" "$NSAMPLES" 0.5
t2=$(now)
echo "perplexity: project ..." >&2
node dist/lib/cli.js eval "${THREADS_FLAG[@]}" --model "$MODEL" --ppl wikitext2 --seqlen "$SEQLEN" \
  --max-windows "$WINDOWS" >"$TMP/project-ppl.json" 2>"$TMP/project-ppl.err"
echo "perplexity: PyTorch ..." >&2
"$PYTHON" bench/compare-reference.py ppl "$MODEL" "$TMP/ids.json" "$SEQLEN" "$WINDOWS" >"$TMP/torch-ppl.json"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
"$PYTHON" bench/compare-reference.py masks "$TMP/torch-wanda.pt" "$TMP/project-wanda" >"$TMP/masks.json"
BACKEND=$(grep -m1 -o 'backend [^;]*' "$TMP/project-prune.err" || true)

"$PYTHON" - "$TMP" "$t0" "$t1" "$t2" "$BLAS" "$LOAD_BEFORE" "$LOAD_AFTER" "$BACKEND" "$NSAMPLES" "$SEQLEN" <<'EOF'
import json, os, sys
tmp, t0, t1, t2, blas, lb, la, backend, nsamples, seqlen = sys.argv[1:]
rd = lambda n: json.load(open(os.path.join(tmp, n)))
ids, pp, tp, masks = rd('ids.json'), rd('project-ppl.json')['perplexity'][0], rd('torch-ppl.json'), rd('masks.json')
proj_prune, torch_prune = float(t1) - float(t0), float(t2) - float(t1)
same_windows = rd('project-prune.json').get('calibration', {}).get('hash') == ids['calibrationHash']
print(json.dumps({
    'bench': 'compare-reference', 'machine': f'{len(os.sched_getaffinity(0))} cores', 'load': {'before': lb, 'after': la},
    'project': backend, 'pytorch': json.loads(blas),
    'prune': {'what': f'wanda 50% unstructured, c4-llama-7m, {nsamples} x {seqlen}, seed 0, whole process',
              'projectSeconds': round(proj_prune, 2), 'pytorchSeconds': round(torch_prune, 2),
              'ratioProjectOverPytorch': round(proj_prune / torch_prune, 3), 'sameCalibrationWindows': same_windows,
              'masks': masks},
    'perplexity': {'what': f'wikitext2 seqlen {seqlen}, first {pp["windows"]} windows',
                   'projectTokensPerSecond': round(pp['tokensPerSecond'], 1), 'pytorchTokensPerSecond': round(tp['tokensPerSecond'], 1),
                   'ratioProjectOverPytorch': round(pp['tokensPerSecond'] / tp['tokensPerSecond'], 3),
                   'projectPpl': pp['ppl'], 'pytorchPpl': tp['ppl'], 'windows': [pp['windows'], tp['windows']]},
}, indent=2))
EOF
