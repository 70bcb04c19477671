#!/usr/bin/env bash
# The reference model's GPU runs, as made on the lent H200 (see models/reference/README.md).
#
# One warm machine, calls in a row (it goes back after ~30 s idle, with its /tmp):
#   gpu.sh receive  carry .refgpu/a = {part.00, train.0.parquet, train.1.parquet}: kept in /tmp; then the
#                   batch-1 vs batched sparse timing on a random model of the same shape (benchmarks/bench_batch_generate.py)
#   gpu.sh train    carry .refgpu/b = {part.01, gguf.sha256, whl/, tok.tar.xz, train.2.parquet, eval_rows.parquet}:
#                   joins and checks the GGUF (98 MB, larger than one transfer: ../shared/DESIGN.md, "The
#                   machines"), trains the adapter (TRAIN_S seconds), keeps everything for the next calls in /tmp
#   gpu.sh eval     no carry: WORKERS processes on the one GPU; worker 0 first runs the dense evaluation
#                   (2k/4k/8k, 24 a cell), then all claim sparse units from one queue until SPARSE_S; every
#                   worker is killed at HARD_S so the call returns its files inside the 600 s limit
#   gpu.sh collect  copies what the workers wrote to $OUT (after an eval call that ran out of time)
# A later `CALL=2 gpu.sh eval` goes on with the units not finished (finished ones are skipped).
# As run for the model card: receive; TRAIN_S=500 train; CALL=1 SPARSE_S=420 SPARSE_L=4096,8192 eval, which
# had no HARD_S yet and was stopped at 600 s by ada_snapkv units at c <= 10 (nothing came back from it); then
# collect, with 16 workers given 215 s for those units (none finished).
# Round 3 (the shipped adapter, stage 2): the GGUF halves as part.0N.xz (8 % smaller) to make room for
# training data: .refgpu/a = {part.00.xz, train.0, train4.0, train4.1}, .refgpu/b = {part.01.xz, gguf.sha256,
# whl/, tok.tar.xz, train.2, eval_rows} (stage 1's train.1 did not fit). STAGE=2 receive also times the KV
# methods' batch of four; STAGE=2 TRAIN_S=330 train goes on training the stage-1 adapter
# (models/reference/adapter as committed in f65f6b0) on those four parts and runs the dense evaluation in the same
# call; then CALL=1 SPARSE_S=370 HARD_S=400 SPARSE_L=4096,8192 eval.
# Everything kept goes under $OUT.
set -euo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
# A part of the GGUF: part.0N, or part.0N.xz (8 % smaller, which left room for more training data in a carry)
part() { if [ -f "$1.xz" ]; then python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" "$1.xz"; else cat "$1"; fi; }
case "${1:?receive, train, eval or collect}" in
receive)
    mkdir -p /tmp/train && part .refgpu/a/part.00 >/tmp/part.00 && cp .refgpu/a/train*.parquet /tmp/train/
    nvidia-smi --query-gpu=name,memory.total --format=csv
    python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"
    if [ "${STAGE:-1}" = 2 ]; then  # the KV methods' batch of four after babaa66 (cuDNN SDPA off for ragged decode)
        timeout 150 python3 benchmarks/bench_batch_generate.py --length 4096 --batch 4 --new 32 --c 20 --spread 13 \
            --methods snapkv,ada_snapkv --profile ada_snapkv --out "$OUT/bench_batch_generate.json" 2>&1 | tee "$OUT/bench.log" || true
    else
        timeout 100 python3 benchmarks/bench_batch_generate.py --length 4096 --batch 4 --new 32 \
            --methods vertical_slash,quest,snapkv 2>&1 | tee "$OUT/bench.log" || true
    fi
    ;;
train)
    B=.refgpu/b
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $B/whl/*.whl
    mkdir -p /tmp/smol && { cat /tmp/part.00; part $B/part.01; } >$GGUF
    echo "$(cat $B/gguf.sha256)  $GGUF" | sha256sum -c
    rm -rf /tmp/tok && tar -xJf $B/tok.tar.xz -C /tmp && cp $B/eval_rows.parquet /tmp/ && cp $B/train*.parquet /tmp/train/
    if [ "${STAGE:-1}" = 2 ]; then
        python3 models/reference/train.py /tmp/train/*.parquet --gguf $GGUF --tokenizer /tmp/tok --out "$OUT/adapter" \
            --init-adapter models/reference/adapter --lr 3e-4 --warmup 20 --batch-tokens 32768 \
            --budget-s "${TRAIN_S:-330}" --max-epochs 2 2>&1 | tee "$OUT/train.log"
    else
        python3 models/reference/train.py /tmp/train/*.parquet --gguf $GGUF --tokenizer /tmp/tok --out "$OUT/adapter" \
            --rank 16 --alpha 32 --lr 6e-4 --warmup 30 --batch-tokens 32768 --budget-s "${TRAIN_S:-500}" \
            --max-epochs 4 2>&1 | tee "$OUT/train.log"
    fi
    rm -rf /tmp/adapter && cp -r "$OUT/adapter" /tmp/adapter
    if [ "${STAGE:-1}" = 2 ]; then  # dense first, so the sparse grid is only run for an adapter worth shipping
        python3 models/reference/evaluate.py /tmp/eval_rows.parquet --gguf $GGUF --tokenizer /tmp/tok --adapter /tmp/adapter \
            --out /tmp/dense.jsonl --dense-lengths 4096,2048,8192 --dense-n 24 --sparse-n 0 2>&1 | grep -v Convert | tail -n 5
        cp /tmp/dense.jsonl "$OUT/dense.jsonl"
    fi
    ;;
eval)
    call=${CALL:-1} workers=${WORKERS:-16}
    done_files=$(ls /tmp/sparse.*.jsonl 2>/dev/null || true)
    common=(/tmp/eval_rows.parquet --gguf $GGUF --tokenizer /tmp/tok --adapter /tmp/adapter
        --sparse-length "${SPARSE_L:-4096}" --sparse-n "${SPARSE_N:-12}" --batch-size "${BATCH:-4}"
        --sparse-c "${SPARSE_C:-20,10,5,2}" --queue /tmp/queue.$call --budget-s "${SPARSE_S:-450}")
    for i in $(seq 0 $((workers - 1))); do
        dense=(--dense-lengths "")
        if [ "$i" = 0 ] && [ ! -f /tmp/dense.jsonl ]; then dense=(--dense-lengths 4096,2048,8192 --dense-n 24); fi
        out=/tmp/sparse.$call.$i.jsonl
        [ "${dense[1]}" != "" ] && out=/tmp/dense.jsonl.part
        timeout "${HARD_S:-540}" python3 models/reference/evaluate.py "${common[@]}" "${dense[@]}" --out $out \
            --done $done_files >/tmp/eval.$call.$i.log 2>&1 &
    done
    wait || true
    if [ -f /tmp/dense.jsonl.part ]; then
        grep '"method": "dense"' /tmp/dense.jsonl.part >/tmp/dense.jsonl
        grep -v '"method": "dense"' /tmp/dense.jsonl.part >/tmp/sparse.$call.dense-worker.jsonl || true
        rm /tmp/dense.jsonl.part
    fi
    cp /tmp/dense.jsonl "$OUT/dense.jsonl" || true
    cat /tmp/sparse.*.jsonl >"$OUT/sparse.jsonl" || true
    grep -h "^dense\|^sparse:\|^total\|Error" /tmp/eval.$call.*.log | tee "$OUT/eval.log" || true
    grep -h "^unit" /tmp/eval.$call.*.log >"$OUT/units.log" || true
    ;;
collect)
    cat /tmp/dense.jsonl /tmp/dense.jsonl.part /tmp/sparse.*.jsonl >"$OUT/all.jsonl" 2>/dev/null || true
    for f in /tmp/eval.*.log; do echo "== $f"; grep -v Convert "$f" | tail -n 4; done >"$OUT/logs.txt" 2>&1 || true
    grep -h "^unit\|^dense" /tmp/eval.*.log >"$OUT/units.log" || true
    ;;
esac
