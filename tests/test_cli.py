import json
import re
import subprocess
from pathlib import Path

import audioldm
from audioldm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    r = subprocess.run(["audioldm", "--version"], capture_output=True, text=True)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and out.startswith(f"audioldm {audioldm.__version__} (distribution audioldm-toolkit,"), out
    assert str(Path(audioldm.__file__).parent) in out  # which installation runs (AudioLDM's own package is "audioldm")


def test_info(write_sine, capsys, tmp_path):
    p = write_sine("x.wav", sr=22050, seconds=0.5, amp=0.25)
    assert main(["info", "--json", str(p)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sample_rate"] == 22050 and info["channels"] == 1 and abs(info["peak"] - 0.25) < 1e-3
    assert main(["info", str(p)]) == 0
    assert "0.500 s, 22050 Hz, 1 ch" in capsys.readouterr().out
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    assert main(["info", str(p), str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err


def test_readme_quick_start_matches_ci():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
    assert len(commands) == 2, "the quick start has exactly two commands"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for c in commands:
        assert c in ci, f".ci/run must run the README command verbatim: {c}"
