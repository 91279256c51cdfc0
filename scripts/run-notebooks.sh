#!/usr/bin/env bash
# Execute the tslab notebooks headless and fail when any cell raises.
#
#   scripts/run-notebooks.sh [--inplace] [NOTEBOOK.ipynb ...]      (default: every notebooks/*.ipynb)
#
# Executed copies go to $NOTEBOOK_OUT (default: a fresh temporary folder, printed at the end); --inplace writes the
# outputs back into the notebooks instead (to refresh the committed outputs).
#
# What it needs and does:
#   - Node >= 20.12 and the project's node_modules (npm ci).
#   - Jupyter's nbconvert, on Debian: apt-get install -y jupyter-nbconvert python3-ipykernel
#   - Builds dist/ (`npm run build`) when dist/lib/index.js is missing or older than a
#     file under lib/: the notebooks import the compiled package.
#   - Installs tslab (pinned, $TSLAB_VERSION) into .cache/tslab when it is not there yet. It is not a devDependency
#     of the project: tslab bundles TypeScript 5.0 with its own `tsc` bin, which npm links over
#     node_modules/.bin/tsc and so breaks `npm run build`. Set $TSLAB to use another tslab binary.
#   - Registers the tslab kernel in a private Jupyter folder for this run only (JUPYTER_PATH), so it neither needs
#     nor changes a kernel installed with `tslab install`.
#   - Runs each notebook with the kernel's working directory in notebooks/ (as Jupyter does); the notebooks find
#     the shared models and data at $LLM_PRUNE_SHARED, else ../shared beside the repository.
set -euo pipefail

TSLAB_VERSION=1.0.22
TIMEOUT=900 # seconds per cell

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

inplace=false
notebooks=()
for arg in "$@"; do
  case "$arg" in
    --inplace) inplace=true ;;
    -h | --help)
      sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "run-notebooks: unknown option $arg (known: --inplace)" >&2
      exit 2
      ;;
    *) notebooks+=("$arg") ;;
  esac
done
if [ ${#notebooks[@]} -eq 0 ]; then
  shopt -s nullglob
  notebooks=(notebooks/*.ipynb)
  shopt -u nullglob
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "run-notebooks: no notebooks found in $root/notebooks" >&2
  exit 2
fi
for nb in "${notebooks[@]}"; do
  [ -f "$nb" ] || { echo "run-notebooks: $nb: no such notebook" >&2; exit 2; }
done

# --- prerequisites -------------------------------------------------------------------------------------------------
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number); console.log(a > 20 || (a === 20 && b >= 12) ? "yes" : "no")')
if [ "$node_ok" != yes ]; then
  echo "run-notebooks: Node $(node --version) is too old: the notebooks need Node >= 20.12 (vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER)" >&2
  exit 1
fi
if ! command -v jupyter > /dev/null || ! jupyter nbconvert --version > /dev/null 2>&1; then
  echo "run-notebooks: 'jupyter nbconvert' is not available; on Debian: apt-get install -y jupyter-nbconvert python3-ipykernel" >&2
  exit 1
fi
if [ ! -f node_modules/typescript/bin/tsc ]; then
  echo "run-notebooks: node_modules is missing or incomplete; run 'npm ci' in $root first" >&2
  exit 1
fi

# --- build dist/ when needed -----------------------------------------------------------------------------------------
if [ ! -f dist/lib/index.js ] || [ -n "$(find lib -name '*.ts' -newer dist/lib/index.js -print -quit)" ]; then
  echo "run-notebooks: building dist/ (npm run build)"
  node scripts/build.mjs
fi

# --- tslab ---------------------------------------------------------------------------------------------------------
tslab=${TSLAB:-$root/.cache/tslab/node_modules/.bin/tslab}
if [ -z "${TSLAB:-}" ]; then
  installed=$(node -p "require('$root/.cache/tslab/node_modules/tslab/package.json').version" 2> /dev/null || true)
  if [ "$installed" != "$TSLAB_VERSION" ]; then
    echo "run-notebooks: installing tslab@$TSLAB_VERSION into .cache/tslab"
    mkdir -p .cache/tslab
    npm install --prefix .cache/tslab --no-save --no-audit --no-fund --loglevel=error "tslab@$TSLAB_VERSION"
  fi
fi
if [ ! -x "$tslab" ]; then
  echo "run-notebooks: tslab binary $tslab not found or not executable" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/run-notebooks.XXXXXX")
mkdir -p "$work/jupyter/kernels/tslab"
# What `tslab install` writes, plus: hide Node's one-line ExperimentalWarning about the vm loader the notebooks use.
cat > "$work/jupyter/kernels/tslab/kernel.json" << EOF
{
  "argv": ["$tslab", "kernel", "--config-path", "{connection_file}"],
  "display_name": "TypeScript",
  "language": "typescript",
  "env": {"NODE_OPTIONS": "--disable-warning=ExperimentalWarning"}
}
EOF
export JUPYTER_PATH="$work/jupyter"
export PYDEVD_DISABLE_FILE_VALIDATION=1 # quiets ipykernel's debugger notice about frozen modules
out=${NOTEBOOK_OUT:-$work/executed}
mkdir -p "$out"

# --- execute -------------------------------------------------------------------------------------------------------
failed=()
for nb in "${notebooks[@]}"; do
  echo "run-notebooks: executing $nb"
  start=$(date +%s)
  where=(--output-dir "$out")
  if [ "$inplace" = true ]; then where=(--inplace); fi
  if jupyter nbconvert --to notebook --execute \
    --ExecutePreprocessor.kernel_name=tslab \
    --ExecutePreprocessor.timeout="$TIMEOUT" --ExecutePreprocessor.record_timing=False \
    "${where[@]}" "$nb" 2> "$work/nbconvert.log"; then
    echo "run-notebooks: $nb OK ($(($(date +%s) - start)) s)"
  else
    failed+=("$nb")
    echo "run-notebooks: $nb FAILED ($(($(date +%s) - start)) s):" >&2
    grep -v -e '^\[NbConvertApp\]' -e 'frozen modules' -e 'Debugging will proceed' -e '-Xfrozen_modules' "$work/nbconvert.log" |
      sed -n '/CellExecutionError\|CellTimeoutError\|DeadKernelError\|NoSuchKernel/,$p' | head -n 30 >&2
    # tslab reports a cell's error (type error, exception) on the cell's stderr, which nbconvert does not show:
    # execute again past errors into $out/with-errors/ and print the stderr of each cell.
    if ! grep -q 'CellTimeoutError' "$work/nbconvert.log"; then
      mkdir -p "$out/with-errors"
      jupyter nbconvert --to notebook --execute --allow-errors \
        --ExecutePreprocessor.kernel_name=tslab \
        --ExecutePreprocessor.timeout="$TIMEOUT" --ExecutePreprocessor.record_timing=False \
        --output-dir "$out/with-errors" "$nb" 2> /dev/null || true
      executed="$out/with-errors/$(basename "$nb")"
      if [ -f "$executed" ]; then
        node -e '
          const nb = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
          const text = (s) => (Array.isArray(s) ? s.join("") : s ?? "");
          nb.cells.filter((c) => c.cell_type === "code").forEach((c, i) => {
            for (const o of c.outputs ?? []) {
              const msg = o.output_type === "error" ? `${o.ename}: ${o.evalue}` : o.name === "stderr" ? text(o.text) : "";
              if (msg) console.error(`  code cell ${i + 1} stderr: ${msg.trimEnd().split("\n").slice(0, 12).join("\n    ")}`);
            }
          });' "$executed" >&2
      fi
    fi
  fi
done

rm -rf "$work/jupyter" "$work/nbconvert.log"
if [ -z "$(ls -A "$out")" ]; then rmdir "$out"; else echo "run-notebooks: executed notebooks are in $out"; fi
rmdir "$work" 2> /dev/null || true
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-notebooks: ${#failed[@]} of ${#notebooks[@]} notebooks failed: ${failed[*]}" >&2
  exit 1
fi
echo "run-notebooks: all ${#notebooks[@]} notebooks executed without errors"
