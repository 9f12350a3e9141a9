#!/usr/bin/env bash
# bash recipes/gm_notes/run.sh [DATA_DIR=data] [RUNS_DIR=runs]
#
# Reproduce the shipped GM-notes models from scratch on CPU (or GPU when present): render the data, train the VAE and
# the label-conditioned U-Net, assemble the default model (fp16, the universal vocoder) into audioldm/pretrained/gm-notes,
# distil it into the two-evaluation student audioldm/pretrained/gm-notes-fast, evaluate both (the GM judge's stage
# decomposition on held-out label combinations, with a row of training combinations beside them) and export the
# samples/ gallery. Both make whole notes (2.08 s).
# The vocoder is the shipped universal one (recipes/vocoder, README "The vocoder"). Every step is one recipe command; each training step resumes if its run directory holds checkpoints.
#
# Training data is rendered from FluidR3_GM (Debian/Ubuntu: apt-get install fluid-soundfont-gm; or point SOUNDFONT
# at any .sf2); TimGM6mb (inside the pretty_midi wheel) is kept for evaluation only.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-data}
RUNS=${2:-runs}
SOUNDFONT=${SOUNDFONT:-/usr/share/sounds/sf2/FluidR3_GM.sf2}
R=recipes/gm_notes
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
if [ ! -f "$SOUNDFONT" ]; then
    echo "run.sh: training soundfont $SOUNDFONT not found; install it (apt-get install fluid-soundfont-gm) or set" \
         "SOUNDFONT=/path/to/FluidR3_GM.sf2" >&2
    exit 1
fi

# 1. data: the generator's training grid (FluidR3_GM, 8 instruments x pitches 48-83 x velocities 40/80/120), whole
#    notes of 2.08 s (onset, 1 s hold, release); the hash split's valid tenth is held out of every training stage
python $R/prepare.py --preset demo --soundfont "$SOUNDFONT" --out $DATA/gm_notes_fluid --overwrite

# 2. VAE (0.69M parameters): 5000 steps, L1 + KL only (README: the VAE sweep; the PatchGAN did not help)
[ -d $RUNS/vae_fluid/vae ] || python $R/train_vae.py --data $DATA/gm_notes_fluid/manifest.jsonl --preset demo \
    --run-dir $RUNS/vae_fluid --steps 5000 $(resume $RUNS/vae_fluid) --no-progress

# 3. vocoder: the shipped universal one (audioldm/pretrained/vocoder-16k; README "The vocoder"), scored on these notes
#    by the stage decomposition, from real mels and from this VAE's reconstructions
python $R/evaluate_vocoder.py --data $DATA/gm_notes_fluid/manifest.jsonl --vae $RUNS/vae_fluid/vae --seconds 2.08

# 4. U-Net (demo, 4.3M) on cached latents of whole notes (2.08 s: onset, 1 s hold, release), label conditioning,
#    one cosine schedule
python $R/train_ldm.py --data $DATA/gm_notes_fluid/manifest.jsonl --vae $RUNS/vae_fluid/vae --conditioning labels \
    --run-dir $RUNS/ldm_fluid --clip-seconds 2.08 --batch-size 16 --lr 1e-3 --steps 9000 $(resume $RUNS/ldm_fluid) \
    --no-progress

# 5. the teacher's model folder (default duration = the U-Net's clip length, from RUNS/ldm_fluid/training.json), its
#    evaluation by the GM judge (17 families, 129 programs; README's tables) and the sample gallery
python $R/package.py --vae $RUNS/vae_fluid/vae --ldm $RUNS/ldm_fluid --vocoder universal \
    --out audioldm/pretrained/gm-notes --fp16 --overwrite
python $R/report.py --data $DATA/gm_notes_fluid/manifest.jsonl --gm-judge --skip-own-judge --max-conditions 48 \
    --model audioldm/pretrained/gm-notes
audioldm export --prompts samples/prompts.txt --out samples/gm-notes --overwrite --quiet \
    --model audioldm/pretrained/gm-notes

# 6. the two-evaluation student (recipes/distill), shipped as gm-notes-fast: the default model (README,
#    "Few-step generation"), and its evaluation by the same judge. Every round: teacher samples of training
#    combinations (seed 0: a run's first N samples are the same for any --pairs), guidance 2-4.
#    Round 1: 1536 samples, 2500 steps. Round 2 continues from it (--init) on 3072 samples, 2000 steps at lr 1e-4;
#    round 3 from round 2 on the same samples, 1000 steps; round 5 from round 3 on 7680 samples, 2000 steps.
#    (The shipped rounds 2-3 saw samples 0..1535 twice as often: a hand merge. Round 4, 1000 more steps on round
#    3's samples, was worse and is left out.) A new run folder recomputes its samples.
python recipes/distill/run.py --model audioldm/pretrained/gm-notes --data $DATA/gm_notes_fluid/manifest.jsonl \
    --out $RUNS/distill_gm --preset demo --no-progress $([ -f $RUNS/distill_gm/run.json ] && echo --resume)
python recipes/distill/run.py --model audioldm/pretrained/gm-notes --data $DATA/gm_notes_fluid/manifest.jsonl \
    --out $RUNS/distill_r2 --preset demo --init $RUNS/distill_gm/model --pairs 3072 --steps 2000 --lr 1e-4 --fp16 \
    --no-progress $([ -f $RUNS/distill_r2/run.json ] && echo --resume)
python recipes/distill/run.py --model audioldm/pretrained/gm-notes --data $DATA/gm_notes_fluid/manifest.jsonl \
    --out $RUNS/distill_r3 --preset demo --init $RUNS/distill_r2/model --pairs 3072 --steps 1000 --lr 1e-4 --fp16 \
    --no-progress $([ -f $RUNS/distill_r3/run.json ] && echo --resume)
python recipes/distill/run.py --model audioldm/pretrained/gm-notes --data $DATA/gm_notes_fluid/manifest.jsonl \
    --out $RUNS/distill_r5 --preset demo --init $RUNS/distill_r3/model --pairs 7680 --steps 2000 --lr 1e-4 --fp16 \
    --no-progress $([ -f $RUNS/distill_r5/run.json ] && echo --resume)
python $R/package.py --base $RUNS/distill_r5/model --out audioldm/pretrained/gm-notes-fast --name gm-notes-fast \
    --fp16 --overwrite
python $R/report.py --data $DATA/gm_notes_fluid/manifest.jsonl --model audioldm/pretrained/gm-notes-fast --gm-judge \
    --skip-own-judge --max-conditions 48
