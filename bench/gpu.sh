#!/usr/bin/env bash
# One call for the GPU machine (device tool): runs every benchmark on CUDA and CPU and leaves JSON under $OUT.
#   run(command="bash bench/gpu.sh", timeout_s=540)
# The GPU image has torch, transformers, einops, safetensors, tqdm but not librosa/soundfile/soxr; the benchmarks
# below import only the model code (audioldm.vae/unet/vocoders), which needs none of them. diffusers is installed
# from a wheel carried in shared/wheels if present, else the U-Net bench prints our numbers only.
set -uo pipefail
OUT=${OUT:-bench_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
if ls shared/wheels/diffusers-*.whl >/dev/null 2>&1; then pip install -q --no-deps shared/wheels/diffusers-*.whl; fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
# issue 21's GPU rows first (about 3-4 minutes: compile included): step eager / compiled / CUDA graph vs diffusers
# eager / CUDA graph, 10.24 s end to end with the loop as one graph, training at batch 32 vs diffusers compiled
timeout 420 python bench/gpu_fast.py > "$OUT/gpu_fast.json" 2> "$OUT/gpu_fast.err"
tail -n 5 "$OUT/gpu_fast.err"
# the earlier benchmarks: FULL=1 (they take longer than one device call leaves after the rows above)
[ "${FULL:-0}" = 1 ] || exit 0
python bench/unet.py --presets demo audioldm-s --train-batch 32 --repeats 10 > "$OUT/unet.json" 2> "$OUT/unet.err"
python bench/vae.py --presets demo audioldm-s --repeats 10 > "$OUT/vae.json" 2> "$OUT/vae.err"
python bench/vocoder.py --repeats 10 > "$OUT/vocoder.json" 2> "$OUT/vocoder.err"
tail -n 3 "$OUT"/*.err
python bench/generate.py --preset audioldm-s --duration 10.24 --steps 25 --repeats 5 > "$OUT/generate.json" 2> "$OUT/generate.err"
python bench/memory.py --device cuda --seconds 10.24 --model audioldm/pretrained/gm-notes > "$OUT/memory.json" 2> "$OUT/memory.err"
tail -n 3 "$OUT"/generate.err "$OUT"/memory.err
# fine-tuning's memory levers at AudioLDM-S size (full / LoRA / checkpointing / bf16 weights vs diffusers + peft);
# peft is not in the GPU image: without it the LoRA rows print an error and the others still run
python bench/finetune.py --device cuda --batch 8 --steps 3 > "$OUT/finetune.json" 2> "$OUT/finetune.err"
tail -n 3 "$OUT"/finetune.err
