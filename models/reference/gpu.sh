#!/usr/bin/env bash
# The reference model's GPU runs, as made on the lent H200 (see models/reference/README.md).
#
# The GGUF (98 MB) is larger than one transfer to that machine, so it travels in two parts (../shared/DESIGN.md,
# "The machines"): `gpu.sh receive` keeps part 1 in /tmp, `gpu.sh train` (the next call, at once) joins it
# with part 2, trains and runs the dense evaluation; `gpu.sh sparse` (the call after) runs the sparse grid in
# parallel workers (it needs no carry: what it reads stays in /tmp). Inputs: .refgpu/a/part.00; .refgpu/b/{part.01,gguf.sha256,whl/,tok/,train_rows.parquet,
# eval_rows.parquet} (made by prepare.py, see the README). Everything kept goes under $OUT.
set -euo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
B=.refgpu/b
case "${1:?receive, train or sparse}" in
receive)
    cp .refgpu/a/part.00 /tmp/part.00
    nvidia-smi --query-gpu=name,memory.total --format=csv
    python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"
    ;;
train)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $B/whl/*.whl
    mkdir -p /tmp/smol && cat /tmp/part.00 $B/part.01 >$GGUF
    echo "$(cat $B/gguf.sha256)  $GGUF" | sha256sum -c
    python3 models/reference/train.py $B/train_rows.parquet --gguf $GGUF --tokenizer $B/tok --out "$OUT/adapter" \
        --rank 8 --alpha 16 --lr 8e-4 --warmup 20 --batch-tokens 32768 --budget-s "${TRAIN_S:-320}" \
        --max-epochs 3 2>&1 | tee "$OUT/train.log"
    rm -rf /tmp/adapter /tmp/tok && cp -r "$OUT/adapter" /tmp/adapter && cp -r $B/tok $B/eval_rows.parquet /tmp/
    python3 models/reference/evaluate.py $B/eval_rows.parquet --gguf $GGUF --tokenizer $B/tok --adapter /tmp/adapter \
        --out "$OUT/dense.jsonl" --dense-lengths 4096,2048,8192 --dense-n 24 --sparse-n 0 \
        --budget-s "${EVAL_S:-170}" 2>&1 | tee "$OUT/dense.log"
    ;;
sparse)
    if [ ! -f /tmp/adapter/adapter_config.json ]; then  # a fresh machine: part 1 came by `receive`, the rest in .refgpu/c
        C=.refgpu/c
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $C/whl/*.whl
        mkdir -p /tmp/smol && cat /tmp/part.00 $C/part.01 >$GGUF
        echo "$(cat $C/gguf.sha256)  $GGUF" | sha256sum -c
        cp -r $C/adapter /tmp/adapter && cp -r $C/tok $C/eval_rows.parquet /tmp/
    fi
    workers=${WORKERS:-12}
    for i in $(seq 0 $((workers - 1))); do
        python3 models/reference/evaluate.py /tmp/eval_rows.parquet --gguf $GGUF --tokenizer /tmp/tok \
            --adapter /tmp/adapter --out /tmp/sparse.$i.jsonl --dense-lengths "" --sparse-n "${SPARSE_N:-8}" \
            --sparse-length 4096 --shard "$i/$workers" --budget-s "${SPARSE_S:-240}" >/tmp/sparse.$i.log 2>&1 &
    done
    wait || true
    cat /tmp/sparse.*.jsonl >"$OUT/sparse.jsonl"
    tail -n 3 /tmp/sparse.*.log | tee "$OUT/sparse.log"
    ;;
esac
