"""python bench/longform.py [--durations 10 60 600] [--model MODEL]

Peak memory (RSS of a fresh process) and wall time of generate() at each duration with the default model: windowed
denoising and chunked VAE decoding (audioldm/pipeline/longform.py) keep the U-Net and the VAE at one window; the
reference is the same process at the shortest duration. Prints JSON."""

import argparse
import json
import subprocess
import sys

CODE = """
import resource, sys, time
from audioldm import AudioLDM
p = AudioLDM.from_pretrained(None if sys.argv[2] == "-" else sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
p.generate("a flute playing G4", duration=float(sys.argv[1]), seed=0, progress=False)
print(time.perf_counter() - t0, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", type=float, nargs="+", default=[10, 60, 600])
    ap.add_argument("--model", default="-", help="a model folder (default: the shipped default)")
    args = ap.parse_args()
    rows = {}
    for d in args.durations:
        out = subprocess.run([sys.executable, "-c", CODE, str(d), args.model], capture_output=True, text=True,
                             check=True).stdout.split()
        wall, base, peak = float(out[-3]), int(out[-2]) / 1024, int(out[-1]) / 1024
        rows[f"{d:g} s"] = {"generate_s": round(wall, 2), "x_real_time": round(d / wall, 1),
                            "peak_rss_MB": round(peak), "after_loading_MB": round(base)}
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
