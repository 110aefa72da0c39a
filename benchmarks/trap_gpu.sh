#!/usr/bin/env bash
# The GPU runs of docs/trap-h200.md, one phase per device call (each under 10 minutes).
#   bash benchmarks/trap_gpu.sh PHASE DEST     PHASE: probe | probe-sweep | mistral | qwen
# probe-sweep is the probe phase without its `gpu` test: with the burn-in pass (the default)
# the test and the sweep together no longer fit one call.
# Run from a tree where `bench` and its dependencies are importable (PYTHONPATH; see
# docs/trap-h200.md). Works in /tmp/bench-work/PHASE, then writes DEST/PHASE.tar.gz.
set -uo pipefail
phase=$1; dest=$2; out=/tmp/bench-work
mkdir -p "$out/$phase" "$dest"
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.mem --format=csv \
  > "$out/$phase/nvidia-smi.csv" 2>&1
common=(--repeats 3 --window-s 5 --warmup-s 1 --cooldown-s 1 --batch-sizes 1,4,16,64
        --energy both --device cuda --scratch /tmp --out "$out/$phase")
case $phase in
  probe|probe-sweep)
    if [ "$phase" = probe ]; then
      python3 -m pytest -p no:cacheprovider -W ignore::pytest.PytestConfigWarning -m gpu -s \
        test_bench_gpu.py > "$out/$phase/pytest_gpu.txt" 2>&1
      status=$?; tail -3 "$out/$phase/pytest_gpu.txt"
      [ $status -eq 0 ] || { tar -czf "$dest/$phase.tar.gz" -C "$out" "$phase"; exit $status; }
    fi
    python3 -m bench "${common[@]}" --model probe --variants bf16,int8,nf4 \
      --dataset multihop --per-depth 25 --depths 1-8 --max-tokens 160 --answer-tokens 200
    ;;
  mistral)
    python3 -m bench "${common[@]}" --model random:mistral-7b --variants bf16,int8,nf4 \
      --max-tokens 48
    ;;
  qwen)
    python3 -m bench "${common[@]}" --model random:qwen3-0.6b --variants bf16,int8,nf4 \
      --max-tokens 48
    ;;
  *) echo "unknown phase $phase"; exit 2 ;;
esac
status=$?
tar -czf "$dest/$phase.tar.gz" -C "$out" "$phase"
exit $status
