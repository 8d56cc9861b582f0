#!/usr/bin/env bash
# One call on a GPU machine: train the CIFAR-10 trainer with its defaults, sample 10,000 images, keep the results.
#
#   DATA=data/cifar10-jpeg bash tools/cifar_gpu_run.sh          # the real run (about 8 minutes on an H100/H200)
#   TINY=1 DATA=data/cifar10-jpeg bash tools/cifar_gpu_run.sh   # the same steps on a few hundred images, CPU, seconds
#
# DATA is a folder with the JPEG copy of CIFAR-10's train.zip (train/<class>/NNNN.jpg), and optionally test.zip
# (the encoder's test accuracy; without it 5% of the training images are held out), the statistics file
# cifar10-jpeg-test-stats.npz and an Inception-v3 2015-12-05 TorchScript file inception*.pt (then FID is
# measured here too; without them, measure it later from the shards with `python -m drifting_min.cifar fid`).
# Results go to $OUT (default runs/gpu_out): ema.pt, log.jsonl, grid.png, curves.png, encoder.json, config.json,
# bench.txt, samples/samples-*.npz (uint8, at most 15 MB each), summary.json. MINUTES caps the training's wall
# time (default 8); the run folder itself (with the full checkpoint) is $RUN (default runs/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/cifar10-jpeg}
OUT=${OUT:-runs/gpu_out}
RUN=${RUN:-runs/gpu}
PY=${PYTHON:-$(command -v python3 || command -v python)}
MINUTES=${MINUTES:-8}
N=${N:-10000}
mkdir -p "$OUT"
[ -f "$DATA/train.zip" ] || { echo "no $DATA/train.zip: put the JPEG copy of CIFAR-10 there" >&2; exit 2; }
TRAIN_ZIP="$DATA/train.zip"
TEST_OPT=()
[ -f "$DATA/test.zip" ] && TEST_OPT=(--test-data "$DATA/test.zip")
EXTRA=()
BENCH=(--device cuda)
if [ "${TINY:-0}" = "1" ]; then
  # a few hundred images (the first 40 of each class), a tiny configuration, on the CPU
  SUB="$RUN.tiny-data"
  mkdir -p "$SUB"
  "$PY" - "$TRAIN_ZIP" "$SUB/train.zip" <<'PYEOF'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
    count = {}
    for name in sorted(n for n in z.namelist() if n.endswith(".jpg")):
        cls = name.split("/")[-2]
        if count.get(cls, 0) < 40:
            count[cls] = count.get(cls, 0) + 1
            out.writestr(name, z.read(name))
print(f"tiny subset: {sum(count.values())} images of {len(count)} classes in {dst}")
PYEOF
  TRAIN_ZIP="$SUB/train.zip"
  TEST_OPT=()
  N=${TINY_N:-200}
  EXTRA=(--device cpu --encoder-width 8 --encoder-epochs 2 --encoder-batch 64 --gen-width 8 --noise-dim 16
         --batch-gen 20 --batch-real 20 --gen-steps 6 --warmup 2 --ckpt-every 3 --grid-every 3 --log-every 1)
  BENCH=(--device cpu --steps 1)
fi
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/env.txt"
timeout 90 "$PY" bench/bench_cifar_step.py "${BENCH[@]}" > "$OUT/bench.txt" 2>&1 || echo "bench failed or timed out" >> "$OUT/bench.txt"
cat "$OUT/bench.txt"
"$PY" -m drifting_min.cifar train --out "$RUN" --data "$TRAIN_ZIP" "${TEST_OPT[@]}" --minutes "$MINUTES" "${EXTRA[@]}" 2>&1 | tail -n 40
"$PY" -m drifting_min.cifar sample --out "$RUN" --n "$N" --to "$OUT/samples" --no-progress
"$PY" -m drifting_min.cifar plot --out "$RUN" --to "$OUT/curves.png"
INCEPTION=$(ls "$DATA"/inception*.pt 2>/dev/null | head -n 1 || true)
if [ -n "$INCEPTION" ] && [ -f "$DATA/cifar10-jpeg-test-stats.npz" ]; then
  "$PY" -m drifting_min.cifar fid --samples "$OUT/samples" --n "$N" --inception "$INCEPTION" \
    --ref-stats "$DATA/cifar10-jpeg-test-stats.npz" --no-progress | tee "$OUT/fid.json"
fi
cp "$RUN/ema.pt" "$RUN/log.jsonl" "$RUN/grid.png" "$RUN/config.json" "$OUT/"
"$PY" - "$RUN" "$OUT" <<'PYEOF'
import json, sys, torch
run, out = sys.argv[1], sys.argv[2]
enc = {k: v for k, v in torch.load(f"{run}/encoder.pt", map_location="cpu", weights_only=False).items() if k != "state_dict"}
json.dump(enc, open(f"{out}/encoder.json", "w"), indent=1)
lines = [json.loads(l) for l in open(f"{run}/log.jsonl") if l.strip()]
steps = [l for l in lines if "loss" in l]
summary = {"encoder": enc, "last": steps[-1] if steps else None, "steps_logged": len(steps),
           "median_images_per_s": sorted(l["images_per_s"] for l in steps)[len(steps) // 2] if steps else None}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(summary))
PYEOF
ls -la "$OUT" "$OUT/samples" | head -n 30
