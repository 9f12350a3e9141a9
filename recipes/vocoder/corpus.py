"""python recipes/vocoder/corpus.py --out data/vocoder_corpus

Assemble the universal vocoder's broad, offline training corpus from Debian packages, with whole sources held out:
  apt-get install fluid-soundfont-gm musescore-general-soundfont-small hydrogen-drumkits colobot-common-sounds \\
      sound-theme-freedesktop ffmpeg asterisk-core-sounds-{en,es,fr,it,ru}-g722
(TimGM6mb comes inside the pretty_midi wheel: held out here, so tests can render notes the vocoder never heard.)

| kind | training sources | held-out sources |
|---|---|---|
| GM notes (every program + the drum kit) | FluidR3_GM (MIT), MuseScore General Lite (MIT) | TimGM6mb (GPL-2) |
| real drum kits | hydrogen-drumkits' 7 acoustic kits (GPL-2+ / CC) | its kits ForzeeStereo, Millo-Drums_v.1 |
| recorded speech | asterisk prompts: Allison (en, es), Carlo (it), IvrvoiceRU (ru) (CC-BY-SA-3.0) | June (fr) |
| sound effects | colobot-common-sounds (GPL-3+) | sound-theme-freedesktop (GPL-2+ / CC-BY-SA-3.0) |

Writes OUT/train/manifest.jsonl and OUT/heldout/manifest.jsonl (absolute paths; columns caption, corpus = which
source, kind = gm / drums / speech / effects, and program / pitch for GM notes) and OUT/LICENSES.md. Asterisk's G.722 prompts are decoded to 16 kHz WAV
with ffmpeg under OUT/speech/. recipes/vocoder/run.py then reads --data OUT/train --heldout OUT/heldout.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audio_folder"))

from audioldm.data.gm_notes import NoteGrid, default_soundfont, render_grid  # noqa: E402

SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SF3 = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
SPEECH = Path("/usr/share/asterisk/sounds")
VOICES_TRAIN = ["en_US_f_Allison", "es_MX_f_Allison", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU"]
VOICE_HELD = "fr_CA_f_June"
EFFECTS_TRAIN = Path("/usr/share/games/colobot/sounds")
EFFECTS_HELD = Path("/usr/share/sounds/freedesktop/stereo")
DRUMS = Path("/usr/share/hydrogen/data/drumkits")
LICENCES = {
    "gm_fluidr3": "FluidR3_GM.sf2, Frank Wen: MIT (Debian fluid-soundfont-gm)",
    "gm_timgm6mb": "TimGM6mb.sf2, Tim Brechbill: GPL-2 (inside the pretty_midi wheel)",
    "gm_musescore": "MuseScore_General_Lite.sf3, S. Christian Collins: MIT (Debian musescore-general-soundfont-small)",
    "drums": "hydrogen-drumkits: GPL-2+ / CC per kit (see data/.../LICENSE and /usr/share/doc/hydrogen-drumkits)",
    "speech": "Asterisk core sound prompts (Allison Smith, June Wallack, Carlo, IvrvoiceRU): CC-BY-SA-3.0",
    "effects_colobot": "colobot-common-sounds: GPL-3+",
    "effects_freedesktop": "sound-theme-freedesktop: GPL-2+ / CC-BY-SA-3.0",
}

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    p.add_argument("--out", required=True)
    p.add_argument("--pitch-step", type=int, default=8, help="render every N-th MIDI pitch from 24 to 100")
    p.add_argument("--speech-per-voice", type=int, default=300, help="prompts per voice (spread over the sorted list)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"error: {out} is not empty; pass --overwrite to rebuild it")
        shutil.rmtree(out)
    missing = [str(f) for f in (SF2, SF3, SPEECH, EFFECTS_TRAIN, EFFECTS_HELD, DRUMS) if not f.exists()]
    if missing or not shutil.which("ffmpeg"):
        raise SystemExit(f"error: missing {missing or ['ffmpeg']}; install the Debian packages in this script's docstring")
    rows = {"train": [], "heldout": []}


    def gm(name, soundfont, split, pitches, velocities):
        grid = NoteGrid(programs=list(range(128)), pitches=pitches, velocities=velocities,
                        drum_keys=list(range(35, 82, 2)))
        rep = render_grid(grid, out / name, soundfont=soundfont)
        for line in (out / name / "manifest.jsonl").read_text().splitlines():
            r = json.loads(line)
            rows[split].append({"path": str((out / name / r["path"]).resolve()), "caption": r["caption"],
                                "corpus": name, "kind": "gm", "program": r["program"], "pitch": r["pitch"]})
        print(f"{name}: {rep['clips']} notes", file=sys.stderr)


    gm("gm_fluidr3", SF2, "train", list(range(24, 101, args.pitch_step)), [64, 112])
    gm("gm_musescore", SF3, "train", list(range(28, 101, args.pitch_step)), [64, 112])
    gm("gm_timgm6mb", default_soundfont(), "heldout", list(range(30, 97, 12)), [96])

    # real drum kits: hydrogen_drums.py's manifest (its two held-out kits are our held-out drums)
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "audio_folder" / "hydrogen_drums.py"),
                    "--out", str(out / "drums")], check=True)
    import csv  # noqa: E402

    with open(out / "drums" / "manifest.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows["train" if r["split"] == "train" else "heldout"].append(
                {"path": r["path"], "caption": r["caption"], "corpus": f"drums_{r['kit']}", "kind": "drums"})


    def spread(files, n):
        files = sorted(files)
        return files if len(files) <= n else [files[round(i * (len(files) - 1) / (n - 1))] for i in range(n)]


    for voice in VOICES_TRAIN + [VOICE_HELD]:
        files = spread(SPEECH.joinpath(voice).rglob("*.g722"), args.speech_per_voice if voice != VOICE_HELD else 100)
        for f in files:
            rel = f.relative_to(SPEECH / voice).with_suffix(".wav")
            dst = out / "speech" / voice / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "g722", "-i", str(f),
                            "-ar", "16000", str(dst)], check=True)
            rows["heldout" if voice == VOICE_HELD else "train"].append(
                {"path": str(dst.resolve()), "caption": f"speech, {voice}", "corpus": f"speech_{voice}", "kind": "speech"})

    for folder, name, split in ((EFFECTS_TRAIN, "effects_colobot", "train"),
                                (EFFECTS_HELD, "effects_freedesktop", "heldout")):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in (".wav", ".ogg", ".oga", ".flac"):
                rows[split].append({"path": str(f.resolve()), "caption": f"sound effect {f.stem}", "corpus": name,
                                    "kind": "effects"})

    for split in rows:  # symlinked files (freedesktop's) resolve to one path: keep it once
        seen = set()
        rows[split] = [r for r in rows[split] if not (r["path"] in seen or seen.add(r["path"]))]
    for split, rs in rows.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / split / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    (out / "LICENSES.md").write_text("# Sources of the vocoder corpus\n\n" + "".join(f"- {k}: {v}\n"
                                                                                    for k, v in LICENCES.items()))
    summary = {split: {} for split in rows}
    for split, rs in rows.items():
        for r in rs:
            summary[split][r["kind"]] = summary[split].get(r["kind"], 0) + 1
    print(json.dumps({"out": str(out), "files": summary,
                      "fingerprint": hashlib.sha1(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]}, indent=2))


if __name__ == "__main__":
    main()
