"""python recipes/audio_folder/hydrogen_drums.py --out data/hydrogen_drums [--root /usr/share/hydrogen/data/drumkits]

Build a captioned manifest of real recorded drum and percussion hits from Debian's `hydrogen-drumkits` package
(apt-get install hydrogen-drumkits; 143 MB; GPL / CC-BY-SA / CC0 kits, see LICENSE written next to the manifest).
Only the kits recorded from acoustic instruments are used (the synthesised electronic kits are left out).

Each sample's category comes from its instrument's name in the kit's drumkit.xml (kick, snare, tom, closed / open
hi-hat, crash / ride cymbal, clap, side stick, cowbell, hand drum, tambourine, woodblock). Two whole kits are held
out (``split`` column: never seen in U-Net training). Captions: training clips use one of five phrasings; held-out
clips use those or one of two paraphrases made of the same words that no training caption uses, so the evaluation
has rows for unseen sources and for unseen captions.
"""

import argparse
import csv
import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

KITS = ["BJA_Pacific", "ColomboAcousticDrumkit", "ForzeeStereo", "The Black Pearl 1.0", "Millo-Drums_v.1",
        "Millo_MultiLayered2", "Millo_MultiLayered3", "Gimme A Hand 1.0", "circAfrique v4"]
HELD_OUT = ["ForzeeStereo", "Millo-Drums_v.1"]
RULES = [  # (regex on the lower-cased instrument name, category); first match wins
    (r"kick|bass ?drum|bassdrum", "kick drum"), (r"rim ?click|side stick|stick", "side stick"),
    (r"snare", "snare drum"), (r"tom", "tom"),
    (r"(hh|hat).*(open|semi|swish)|(open|semi).*(hh|hat)", "open hi-hat"), (r"hh|hat", "closed hi-hat"),
    (r"cowbell|agogo", "cowbell"), (r"djembe|conga|bongo|cajon|sangban|dununba|kenkeni", "hand drum"),
    (r"crash|china|splash", "crash cymbal"), (r"ride|bell|cup", "ride cymbal"),
    (r"clap|snap", "hand clap"), (r"tambourine|maraca", "tambourine"),
    (r"wood ?block|clave", "woodblock")]
TRAIN_PHRASES = ["{c}", "a {c}", "a {c} hit", "{c} sample", "one {c} hit"]
UNSEEN_PHRASES = ["a {c} sample", "one {c} sample hit"]  # same words, never a training caption


def category(name: str) -> str | None:
    n = name.lower()
    for pat, cat in RULES:
        if re.search(pat, n):
            return cat
    return None


def pick(options: list[str], key: str) -> str:
    return options[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/usr/share/hydrogen/data/drumkits")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    root, out = Path(args.root), Path(args.out)
    if not root.is_dir():
        raise SystemExit(f"error: {root} not found; install it with: apt-get install hydrogen-drumkits")
    rows, licences = [], []
    for kit in KITS:
        xml = root / kit / "drumkit.xml"
        tree = ET.parse(xml).getroot()
        ns = tree.tag.split("}")[0] + "}" if tree.tag.startswith("{") else ""
        licences.append(f"{kit}: {tree.findtext(ns + 'license') or 'see the Debian copyright file'} "
                        f"(author: {tree.findtext(ns + 'author')})")
        for ins in tree.iter(ns + "instrument"):
            cat = category(ins.findtext(ns + "name") or "")
            files = [ly.findtext(ns + "filename") for ly in ins.iter(ns + "layer")] or [ins.findtext(ns + "filename")]
            for f in files:
                if not cat or not f or not (root / kit / f).is_file():
                    continue
                split = "valid" if kit in HELD_OUT else "train"
                key = f"{kit}/{f}"
                phrases = TRAIN_PHRASES if split == "train" else TRAIN_PHRASES + UNSEEN_PHRASES
                rows.append({"path": str((root / kit / f).resolve()), "caption": pick(phrases, key).format(c=cat),
                             "category": cat, "kit": kit, "split": split})
    out.mkdir(parents=True, exist_ok=True)
    seen = set()
    rows = [r for r in rows if not (r["path"] in seen or seen.add(r["path"]))]  # kits share a few files
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "LICENSE").write_text("Hydrogen drum kits (Debian package hydrogen-drumkits), per kit:\n"
                                 + "\n".join(licences) + "\nFull terms: /usr/share/doc/hydrogen-drumkits/copyright\n")
    cats = {}
    for r in rows:
        cats[r["category"]] = cats.get(r["category"], 0) + 1
    print(f"{len(rows)} samples ({sum(r['split'] == 'valid' for r in rows)} held out: {', '.join(HELD_OUT)}) -> "
          f"{out / 'manifest.csv'}; categories: {cats}")


if __name__ == "__main__":
    main()
