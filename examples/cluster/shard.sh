#!/bin/sh
# One shard of an experiment grid, for a Kubernetes Indexed Job or a SLURM job array (see docs/scaling.md,
# "Sweeps across machines"). The shard index comes from the scheduler, the shard count from SHARDS (or the array size):
#   Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0..completions-1), SHARDS = completions
#   SLURM job array:        SLURM_ARRAY_TASK_ID (--array=0-N-1), SLURM_ARRAY_TASK_COUNT
#
#   shard.sh CONFIG RESULTS [per-shard]
# RESULTS is a folder every shard can write (shared filesystem). With `per-shard`, shard K writes RESULTS/shard-K
# instead (no shared filesystem needed: copy the folders together and merge them afterwards with
#   llm-prune report RESULTS/shard-* --out RESULTS/merged).
# LLM_PRUNE (default `llm-prune`) is the command that runs the CLI.
set -eu
config=$1
results=$2
layout=${3:-shared}
k=${JOB_COMPLETION_INDEX:-${SLURM_ARRAY_TASK_ID:-}}
n=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-}}
if [ -z "$k" ] || [ -z "$n" ]; then
  echo "shard.sh: no shard index/count (set JOB_COMPLETION_INDEX and SHARDS, or run inside a SLURM job array)" >&2
  exit 2
fi
out=$results
if [ "$layout" = per-shard ]; then out=$results/shard-$k; fi
echo "shard $k of $n -> $out" >&2
exec ${LLM_PRUNE:-llm-prune} run "$config" --shard "$k/$n" --set "output=$out"
