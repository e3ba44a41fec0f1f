#!/usr/bin/env bash
# One lent-GPU session (the device tool), prepared here and run there once:
#   1. CPU/GPU agreement of the exact engine (benchmarks/gpu_check.py): a tree packed on the GPU and
#      on the device's CPU gives one archive, each unpacks on the other, and an archive packed on
#      the development machine unpacks on both;
#   2. beside it, a training run that continues the bundled model on the GPU with the same shape
#      (codeseed.train --preset gpu --init-from codeseed/models/codeseed-small).
# What it needs in the working tree (ignored, named in the device tool's carry): .whl/ (cp312 wheels
# of the packages the device image lacks: rapidfuzz, tree-sitter, tree-sitter-python, zstandard,
# constriction), .carry/corpus.tar.xz (`python -m codeseed.train --out PREP --init-from
# codeseed/models/codeseed-small --write-bundle .carry/corpus.tar.xz`), .carry/tree (a small tree:
# schedule 1.2.2's README.rst, setup.py, pyproject.toml, HISTORY.rst and schedule/__init__.py) and
# .carry/here.cseed (`codeseed pack .carry/tree -o .carry/here.cseed --no-ignore`, here).
# Results go to $OUT: agreement.txt, train.log, packed-on-cuda.cseed, model.tar.part-* (the exported
# model without its tokenizer, split under the tool's 16 MiB a file).
# TRAIN_HOURS (default 0.105) sets the training budget, INIT_FROM the model it continues, TRAIN_ARGS
# more flags of codeseed.train; SKIP_CHECK=1 leaves out step 1. A local dry run: OUT=/tmp/o
# TRAIN_HOURS=0.005 NO_WHEELS=1 PY=.venv/bin/python TRAIN_ARGS="--workers 2 --compile 0" bash ...
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; lscpu | grep -E 'Model name|^CPU\(s\)';
  $PY -c "import torch, numpy, numba, transformers; print('torch', torch.__version__, 'numpy', numpy.__version__,
'numba', numba.__version__, 'transformers', transformers.__version__)"; } 2>&1 | tee "$OUT/agreement.txt"

RUN=/tmp/gpu-run
train() {
    $PY -m codeseed.train --out $RUN --bundle .carry/corpus.tar.xz --init-from "${INIT_FROM:-codeseed/models/codeseed-small}" \
        --preset gpu --hours "${TRAIN_HOURS:-0.105}" --seed 7171 ${TRAIN_ARGS:-} "$@"
}
start=$(date +%s)
( train >"$OUT/train.log" 2>&1 || { echo "== training failed; again without torch.compile" >>"$OUT/train.log";
                                    train --compile 0 >>"$OUT/train.log" 2>&1; } ) &
trainer=$!

[ -n "${SKIP_CHECK:-}" ] || timeout 240 $PY benchmarks/gpu_check.py .carry/tree --archive .carry/here.cseed --keep "$OUT" 2>&1 \
    | tee -a "$OUT/agreement.txt"
echo "agreement check: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s" | tee -a "$OUT/agreement.txt"

wait $trainer
echo "training: $(( $(date +%s) - start )) s" >>"$OUT/train.log"
if [ -f $RUN/ckpt.pt ]; then
    $PY -m codeseed.train --out $RUN --export /tmp/export >>"$OUT/train.log" 2>&1
    (cd /tmp/export && tar -cf - config.json generation_config.json model.safetensors training.json) \
        | split -b 12M - "$OUT/model.tar.part-"
fi
grep -E "eval|done|model:|resumed|starting|failed|Error|error" "$OUT/train.log" | tail -20
tail -3 "$OUT/train.log"
cat "$OUT/agreement.txt"
ls -la "$OUT"
