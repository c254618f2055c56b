#!/usr/bin/env bash
# The torch backend's checks on a GPU machine, in one run that fits the device tool's ten minutes: the same tests
# that `npm test` runs on the CPU, with the worker on CUDA, then the speed comparisons. Needs python3 with PyTorch
# (transformers and peft make the reference tests and the HF comparison run rather than skip) and the kit that
# scripts/device/pack.sh makes here (.device-kit/: Node, the runtime node_modules, the fixtures). On that machine,
# from the repository root:
#
#   bash scripts/device/check.sh [step ...]     (default: worker cli bf16 hf bench, in that order)
#
#   worker  the worker's own tests (worker/tests) on the device: transformers' log-probs, PEFT's gradients,
#           batching, sampling, the optimizers, the TypeScript engine's numbers
#   cli     test/torch-cli.test.ts, test/torch-backend.test.ts and test/torch-memory.test.ts on the device in
#           float32: score, generate and finetune against transformers / PEFT / llama2.c, the CPU engine against the
#           worker to 1e-5, the smoke run repeated with one seed, resumed after a kill of the CLI and of the worker;
#           the memory estimate against the bytes autograd keeps and the allocator's peak
#   bf16    the smoke-run tests again with the base weights in bfloat16
#   hf      bench/hf_bench.py: the worker against transformers + peft on SmolLM2-135M's and Llama-3.2-1B's shapes
#   bench   colloquy bench --backend torch --quick: the engine's cases beside the torch backend on the device
#
# Results go to $OUT (default ./device-check): summary.txt (the machine, versions, each step's outcome and
# seconds), <step>.log, hf.json and bench.json: eight files, as many as the device tool brings back. Environment:
# COLLOQUY_TEST_DEVICE (default cuda), COLLOQUY_PYTHON (default the python3 on PATH), CHECK_SECONDS (default 570:
# the whole run's limit; each step also has its own). With the device tool:
#   run(command: "bash scripts/device/check.sh", carry: [".device-kit"], timeout_s: 600)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
KIT=$ROOT/.device-kit
OUT=${OUT:-$ROOT/device-check}
STEPS=${*:-worker cli bf16 hf bench}
PY=${COLLOQUY_PYTHON:-$(command -v python3)}
export COLLOQUY_PYTHON=$PY COLLOQUY_TEST_DEVICE=${COLLOQUY_TEST_DEVICE:-cuda} COLLOQUY_SHARED=$KIT/shared
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
[ -f "$KIT/node.tar.xz" ] || { echo "check.sh: $KIT is missing: run scripts/device/pack.sh where Node is, and carry .device-kit" >&2; exit 2; }
mkdir -p "$OUT"
: >"$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }

# Node and the packages, unpacked with Python (the machine may have no xz)
unpack() {
  "$PY" - "$1" "$2" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    t.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
EOF
}
[ -x "$KIT/node/bin/node" ] || unpack "$KIT/node.tar.xz" "$KIT/node" || exit 2
[ -d node_modules/tsx ] || unpack "$KIT/node_modules.tar.xz" "$ROOT" || exit 2
export PATH=$KIT/node/bin:$PATH
node scripts/build-native.mjs --force --quiet # the engine's kernels for this CPU, or its TypeScript kernels without a compiler

say "colloquy device check, $(date -u +%FT%TZ), device $COLLOQUY_TEST_DEVICE, steps: $STEPS"
say "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none)"
say "node $(node --version); native kernels: $([ -f build/colloquy_native.node ] && echo built here || echo 'not built (TypeScript kernels)')"
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import importlib.util, platform, torch
def version(m):
    return getattr(importlib.import_module(m), "__version__", "?") if importlib.util.find_spec(m) else "absent"
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CUDA not available"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}: {gpu}), "
      f"transformers {version('transformers')}, peft {version('peft')}")
EOF

# step NAME SECONDS 'COMMAND': the command's output to $OUT/NAME.log, its outcome and time to the summary
export OUT
# no step runs past $CHECK_SECONDS (default 570) after the start, so that the summary is written inside the device
# tool's ten minutes; a failed step's log ends with the last worker tracebacks it left in the temp folder
step() {
  local name=$1 limit=$2 cmd=$3 t0=$SECONDS rc how=ok left=$((${CHECK_SECONDS:-570} - SECONDS)) mark
  [ "$left" -ge 30 ] || { say "$name: skipped ($left s left of CHECK_SECONDS)"; return; }
  [ "$limit" -le "$left" ] || limit=$left
  mark=$(mktemp)
  timeout -k 10 "$limit" bash -c "$cmd" >"$OUT/$name.log" 2>&1
  rc=$?
  [ $rc = 0 ] || how="FAILED (exit $rc)"
  [ $rc = 124 ] && how="FAILED (timed out after $limit s)"
  say "$name: $how in $((SECONDS - t0)) s"
  if [ $rc != 0 ]; then
    find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'colloquy-worker-*.txt' -newer "$mark" -printf '%T@ %p\n' | sort -n | tail -5 |
      while read -r _ f; do printf '\n== %s\n' "$f"; cat "$f"; done >>"$OUT/$name.log"
  fi
  rm -f "$mark"
}
TESTS="node --import tsx --test --test-reporter=spec"

for s in $STEPS; do
  case $s in
    worker) step worker 180 'cd worker && "$COLLOQUY_PYTHON" -m unittest discover -s tests -v' ;;
    cli) step cli 300 "$TESTS test/torch-cli.test.ts test/torch-backend.test.ts test/torch-memory.test.ts" ;;
    bf16) step bf16 180 "COLLOQUY_TEST_DTYPE=bfloat16 $TESTS --test-name-pattern='^train' test/torch-cli.test.ts" ;;
    hf) step hf 300 '"$COLLOQUY_PYTHON" bench/hf_bench.py --device "$COLLOQUY_TEST_DEVICE" --json >"$OUT/hf.json"' ;;
    bench) step bench 300 'node bin/colloquy.mjs bench --backend torch --device "$COLLOQUY_TEST_DEVICE" --quick --json --python "$COLLOQUY_PYTHON" >"$OUT/bench.json"' ;;
    *) say "check.sh: no step $s (steps: worker cli bf16 hf bench)" ;;
  esac
done
! grep -q -E "FAILED|skipped|no step" "$OUT/summary.txt"
