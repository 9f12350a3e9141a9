#!/usr/bin/env bash
# bash recipes/gm_notes/run.sh [DATA_DIR=data] [RUNS_DIR=runs]
#
# Reproduce the shipped GM-notes models from scratch on CPU (or GPU when present). This recipe is data and
# settings: it renders the notes, then calls the generic recipes that train every model of the toolkit:
#   recipes/audio_folder/run.py  the VAE and the label-conditioned U-Net (the teacher, audioldm/pretrained/gm-notes)
#   recipes/distill/run.py       the two-evaluation student (audioldm/pretrained/gm-notes-fast, the default model)
# and scores both with the GM judge (report.py: the stage decomposition on held-out label combinations, with a row
# of training combinations beside them) and exports the samples/ gallery. Both make whole notes (2.08 s). The
# vocoder is the shipped universal slot (recipes/vocoder, docs/vocoder.md). Every step resumes where it stopped.
#
# Training data is rendered from FluidR3_GM (Debian/Ubuntu: apt-get install fluid-soundfont-gm; or point SOUNDFONT
# at any .sf2); TimGM6mb (inside the pretty_midi wheel) is kept for evaluation only.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-data}
RUNS=${2:-runs}
SOUNDFONT=${SOUNDFONT:-/usr/share/sounds/sf2/FluidR3_GM.sf2}
R=recipes/gm_notes
resume() { [ -f "$1/run.json" ] && echo --resume || true; }
if [ ! -f "$SOUNDFONT" ]; then
    echo "run.sh: training soundfont $SOUNDFONT not found; install it (apt-get install fluid-soundfont-gm) or set" \
         "SOUNDFONT=/path/to/FluidR3_GM.sf2" >&2
    exit 1
fi

# 1. data: the generator's training grid (FluidR3_GM, 8 instruments x pitches 48-83 x velocities 40/80/120), whole
#    notes of 2.08 s (onset, 1 s hold, release); the manifest's split column holds a tenth out of every stage
python $R/prepare.py --preset demo --soundfont "$SOUNDFONT" --out $DATA/gm_notes_fluid --overwrite

# 2. the teacher: the generic recipe with the teacher's settings. VAE: demo preset (0.69M parameters), 5000 steps,
#    L1 + KL (docs/training.md: the VAE sweep). U-Net: demo preset (4.3M), label conditioning on instrument / pitch /
#    velocity (prompt words for them in labels.json), AudioLDM's scaled-linear schedule, v-prediction, 9000 steps
#    of batch 16 at lr 1e-3 on whole notes; guidance 3 by default; fp16 weights; the universal vocoder, named.
python recipes/audio_folder/run.py --data $DATA/gm_notes_fluid/manifest.jsonl --out $RUNS/gm_teacher \
    --preset small --vae-steps 5000 --steps 9000 --batch-size 16 --lr 1e-3 --schedule scaled_linear \
    --conditioning labels --label-fields instrument pitch velocity --label-words $R/labels.json \
    --clip-seconds 2.08 --guidance 3.0 --category instrument --name gm-notes-demo --fp16 --no-progress \
    $(resume $RUNS/gm_teacher)
rm -rf audioldm/pretrained/gm-notes && cp -r $RUNS/gm_teacher/model audioldm/pretrained/gm-notes

# 3. the vocoder slot scored on these notes by the stage decomposition (real mels and this VAE's reconstructions)
python $R/evaluate_vocoder.py --data $DATA/gm_notes_fluid/manifest.jsonl --vae $RUNS/gm_teacher/vae/vae --seconds 2.08

# 4. the teacher's evaluation by the GM judge (17 families, 129 programs; docs/results.md) and the sample gallery
python $R/report.py --data $DATA/gm_notes_fluid/manifest.jsonl --gm-judge --skip-own-judge --max-conditions 48 \
    --model audioldm/pretrained/gm-notes
audioldm export --prompts samples/prompts.txt --out samples/gm-notes --overwrite --quiet \
    --model audioldm/pretrained/gm-notes

# 5. the two-evaluation student (recipes/distill), shipped as gm-notes-fast: the default model (docs/distillation.md)
#    and its evaluation by the same judge. Every round: teacher samples of training combinations (seed 0: a run's
#    first N samples are the same for any --pairs), guidance 2-4.
#    Round 1: 1536 samples, 2500 steps. Round 2 continues from it (--init) on 3072 samples, 2000 steps at lr 1e-4;
#    round 3 from round 2 on the same samples, 1000 steps; round 5 from round 3 on 7680 samples, 2000 steps.
#    (The shipped rounds 2-3 saw samples 0..1535 twice as often: a hand merge. Round 4, 1000 more steps on round
#    3's samples, was worse and is left out.) A new run folder recomputes its samples.
D="python recipes/distill/run.py --model audioldm/pretrained/gm-notes --data $DATA/gm_notes_fluid/manifest.jsonl \
   --preset demo --no-progress"
$D --out $RUNS/distill_gm $(resume $RUNS/distill_gm)
$D --out $RUNS/distill_r2 --init $RUNS/distill_gm/model --pairs 3072 --steps 2000 --lr 1e-4 --fp16 \
   $(resume $RUNS/distill_r2)
$D --out $RUNS/distill_r3 --init $RUNS/distill_r2/model --pairs 3072 --steps 1000 --lr 1e-4 --fp16 \
   $(resume $RUNS/distill_r3)
$D --out $RUNS/distill_r5 --init $RUNS/distill_r3/model --pairs 7680 --steps 2000 --lr 1e-4 --fp16 \
   --name gm-notes-fast $(resume $RUNS/distill_r5)
rm -rf audioldm/pretrained/gm-notes-fast && cp -r $RUNS/distill_r5/model audioldm/pretrained/gm-notes-fast
python $R/report.py --data $DATA/gm_notes_fluid/manifest.jsonl --model audioldm/pretrained/gm-notes-fast --gm-judge \
    --skip-own-judge --max-conditions 48
