#!/usr/bin/env bash
# bash recipes/gm_notes/run.sh [DATA_DIR=data] [RUNS_DIR=runs]
#
# Reproduce the shipped GM-notes model from scratch on CPU (or GPU when present): render the data, train the VAE and
# the label-conditioned U-Net, assemble the model folder (fp16, Griffin-Lim vocoder) into audioldm/pretrained/gm-notes,
# evaluate it and export the samples/ gallery. WITH_VOCOS=1 also trains the Vocos-style vocoder (and its fine-tune on
# VAE reconstructions) that the README compares against Griffin-Lim; it is not shipped (see README: it scores lower
# on pitch). Every step is one recipe command; each training step resumes if its run directory holds checkpoints.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-data}
RUNS=${2:-runs}
R=recipes/gm_notes
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }

# 1. data: the generator's training grid (TimGM6mb, 8 instruments x pitches 48-83 x velocities 40/80/120) and, for
#    the evaluation classifier only, the same grid at velocities 60/100 (never seen by the generator)
python $R/prepare.py --preset demo --out $DATA/gm_notes_demo --overwrite
python $R/prepare.py --preset demo --velocities 60 100 --out $DATA/gm_notes_cls --overwrite

# 2. VAE (0.69M parameters)
[ -d $RUNS/vae_demo/vae ] || python $R/train_vae.py --data $DATA/gm_notes_demo/manifest.jsonl --preset demo \
    --run-dir $RUNS/vae_demo --steps 1500 $(resume $RUNS/vae_demo) --no-progress

# 3. (WITH_VOCOS=1) vocoder: Vocos-style demo (1.56M), mel L1 + MR-STFT, then fine-tuned on VAE reconstructions
if [ "${WITH_VOCOS:-0}" = 1 ]; then
[ -d $RUNS/vocos_demo/vocoder ] || python $R/train_vocoder.py --data $DATA/gm_notes_demo/manifest.jsonl \
    --model vocos --preset demo --run-dir $RUNS/vocos_demo --steps 4000 --lr 1e-3 --disc-start -1 \
    $(resume $RUNS/vocos_demo) --no-progress
[ -d $RUNS/vocos_vae_ft/vocoder ] || python $R/train_vocoder.py --data $DATA/gm_notes_demo/manifest.jsonl \
    --init $RUNS/vocos_demo/vocoder --vae $RUNS/vae_demo/vae --run-dir $RUNS/vocos_vae_ft --steps 1000 --lr 2e-4 \
    --warmup 50 --disc-start -1 $(resume $RUNS/vocos_vae_ft) --no-progress
fi

# 4. U-Net (demo, 4.3M) on cached latents, label conditioning; trained as 3000 steps, then continued to 6500 and to
#    10000 -- the schedule the shipped weights went through (the cosine learning rate follows the new total, so each
#    continuation first raises it again)
python $R/train_ldm.py --data $DATA/gm_notes_demo/manifest.jsonl --vae $RUNS/vae_demo/vae --conditioning labels \
    --run-dir $RUNS/ldm_demo --batch-size 16 --lr 1e-3 --steps 3000 $(resume $RUNS/ldm_demo) --no-progress
python $R/train_ldm.py --data $DATA/gm_notes_demo/manifest.jsonl --vae $RUNS/vae_demo/vae --conditioning labels \
    --run-dir $RUNS/ldm_demo --batch-size 16 --lr 1e-3 --steps 6500 --resume --no-progress
python $R/train_ldm.py --data $DATA/gm_notes_demo/manifest.jsonl --vae $RUNS/vae_demo/vae --conditioning labels \
    --run-dir $RUNS/ldm_demo --batch-size 16 --lr 1e-3 --steps 10000 --resume --no-progress

# 5. the shipped model folder, its evaluation and the sample gallery
python $R/package.py --vae $RUNS/vae_demo/vae --ldm $RUNS/ldm_demo --vocoder griffinlim \
    --out audioldm/pretrained/gm-notes --fp16 --overwrite
python $R/evaluate.py --classifier-data $DATA/gm_notes_cls/manifest.jsonl --real $DATA/gm_notes_demo/manifest.jsonl \
    --table
audioldm export --prompts samples/prompts.txt --out samples/gm-notes --overwrite --quiet
