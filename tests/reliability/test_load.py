"""Load: 200 prompts in one `audioldm export` run (a subprocess, so its peak RSS is measurable), one bad row among
them; memory stays bounded and the bad row does not stop the others."""

import json
import subprocess
import sys


def test_export_200_prompts_bounded_memory(tiny_model, tmp_path):
    rows = [{"prompt": f"piano note number {i}"} for i in range(200)]
    rows[57] = {"labels": {"pitch": 60}}  # a text model cannot take labels: this row fails
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["export", "--prompts", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "out"), "--model",
            str(tiny_model), "--duration", "0.16", "--steps", "1", "--quiet", "--device", "cpu"]
    code = ("import resource, sys; from audioldm.cli import main; rc = main(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=900)
    peak_mb = int(r.stderr.split("PEAK_RSS_KB")[1].split()[0]) / 1024
    assert r.returncode == 1 and "row 57" in r.stderr  # reported, and the exit code says not all succeeded
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(man["samples"]) == 199 and [f["row"] for f in man["failures"]] == [57]
    assert len(list((tmp_path / "out").glob("*.wav"))) == 199
    print(f"peak RSS of the 200-prompt export: {peak_mb:.0f} MB")
    assert peak_mb < 1500, peak_mb
