#!/usr/bin/env bash
# The FlashAttention-4 wheel set the H200 benchmarks ran with (BENCHMARKS.md, "Prefill speed"), packed for a
# GPU machine that installs no packages and takes about 64 MiB per call, the repository's tracked files
# included (a call with 63.4 MiB in all went through, one with 63.9 MiB was refused): the 92 MB cu13 wheel is
# split into parts so that every call stays under CAP_MIB (62 by default) with the tracked files, and the
# last call (the one that runs the benchmark) keeps SPARE_MIB (4 by default) free for its own carried files.
#
#   bash benchmarks/fa4_wheels.sh .flashwhl      # here: download and split (the folder must be git-ignored)
#   then one call per folder, in order, each right after the last (a lent machine goes back after ~30 s idle):
#     carry .flashwhl/p0:  bash .flashwhl/p0/copy.sh        (and so on for p1 ... when there are more parts)
#     carry .flashwhl/last: source .flashwhl/last/stage2.sh && python benchmarks/bench_attention.py ...
#
# stage2.sh joins the parts, installs the set into /tmp/fa4 and puts it on PYTHONPATH (with the
# nvidia_cutlass_dsl/dsl_packages folder that the wheel's .pth would add; pip --target skips .pth files).
set -euo pipefail
dir=${1:?usage: bash benchmarks/fa4_wheels.sh DIR (a git-ignored folder in the repository)}
cap=$(( ${CAP_MIB:-62} * 1024 * 1024 ))
cd "$(git rev-parse --show-toplevel)"
mkdir -p "$dir"
if ! git check-ignore -q "$dir"; then
  rmdir "$dir" 2>/dev/null || true
  echo "error: $dir is not ignored by git; add it to .git/info/exclude first (carried folders must be ignored)" >&2
  exit 2
fi
all="$dir/all"
mkdir -p "$all"
python3 -m pip download -q --no-deps --only-binary=:all: --pre --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$all" \
  "flash-attn-4==4.0.0b36" "nvidia-cutlass-dsl==4.8.1" "nvidia-cutlass-dsl-libs-base==4.8.1" \
  "nvidia-cutlass-dsl-libs-core==4.8.1" "nvidia-cutlass-dsl-libs-cu13==4.8.1" "quack-kernels==0.6.5" \
  "apache-tvm-ffi==0.1.15.post2" "torch-c-dlpack-ext==0.1.5" 2> >(grep -v "is ignored: it is neither" >&2)
cu13=$(ls "$all"/nvidia_cutlass_dsl_libs_cu13-*.whl)
name=$(basename "$cu13")
tracked=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
room=$((cap - tracked - 64 * 1024))  # what one call may carry besides the tracked files (less some slack)
others=$(find "$all" -name '*.whl' ! -name "$name" -printf '%s\n' | awk '{s += $1} END {print s}')
if [ "$room" -le "$others" ]; then
  echo "error: the tracked files ($tracked bytes) leave too little room under ${CAP_MIB:-62} MiB a call" >&2
  exit 1
fi
rm -rf "$dir"/p* "$dir/last"
total=$(stat -c %s "$cu13")
spare=$(( ${SPARE_MIB:-4} * 1024 * 1024 ))  # left free in the last call for what the benchmark itself carries
last_part=$((room - others - spare))  # the last folder also holds the other wheels
if [ "$last_part" -le 0 ]; then
  echo "error: no room for a cu13 part in the last call; lower SPARE_MIB or raise CAP_MIB" >&2
  exit 1
fi
head_bytes=$((total > last_part ? total - last_part : 0))
i=0
offset=0
while [ "$offset" -lt "$head_bytes" ]; do
  size=$((head_bytes - offset < room ? head_bytes - offset : room))
  mkdir -p "$dir/p$i"
  dd if="$cu13" of="$dir/p$i/cu13part$i" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$size" status=none
  printf '#!/usr/bin/env bash\nset -e\ncp "%s" /tmp/\nnvidia-smi --query-gpu=name,memory.used --format=csv\n' \
    "$dir/p$i/cu13part$i" > "$dir/p$i/copy.sh"
  offset=$((offset + size))
  i=$((i + 1))
done
mkdir -p "$dir/last"
tail -c +$((offset + 1)) "$cu13" > "$dir/last/cu13part$i"
find "$all" -name '*.whl' ! -name "$name" -exec cp {} "$dir/last/" \;
parts=$(for j in $(seq 0 $((i - 1))); do printf '/tmp/cu13part%s ' "$j"; done)
cat > "$dir/last/stage2.sh" <<STAGE2
# source me on the GPU machine right after the copy.sh calls
if [ ! -d /tmp/fa4/flash_attn ]; then
  cat $parts"$dir/last/cu13part$i" > "/tmp/$name"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fa4 \\
    "$dir"/last/*.whl "/tmp/$name" || return 1
fi
export PYTHONPATH=/tmp/fa4:/tmp/fa4/nvidia_cutlass_dsl/dsl_packages\${PYTHONPATH:+:\$PYTHONPATH}
STAGE2
du -b "$dir"/p* "$dir/last" | sed 's/^/packed: /'
echo "calls: $(for j in $(seq 0 $((i - 1))); do printf 'p%s ' "$j"; done)last"
