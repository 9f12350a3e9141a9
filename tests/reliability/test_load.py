"""Load: 200 prompts in one `audioldm export` run (a subprocess, so its peak RSS is measurable), one bad row among
them; memory does not grow with the number of rows (the 200-row run peaks where a 20-row run does: a figure or result
kept per row would show), and the bad row does not stop the others."""

import json
import subprocess
import sys


def _export(tiny_model, tmp_path, n: int, bad: int | None) -> tuple[subprocess.CompletedProcess, float]:
    rows = [{"prompt": f"piano note number {i}"} for i in range(n)]
    if bad is not None:
        rows[bad] = {"labels": {"pitch": 60}}  # a text model cannot take labels: this row fails
    (tmp_path / f"p{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["export", "--prompts", str(tmp_path / f"p{n}.jsonl"), "--out", str(tmp_path / f"out{n}"), "--model",
            str(tiny_model), "--duration", "0.16", "--steps", "1", "--quiet", "--device", "cpu"]
    code = ("import resource, sys; from audioldm.cli import main; rc = main(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=900)
    return r, int(r.stderr.split("PEAK_RSS_KB")[1].split()[0]) / 1024


def test_export_200_prompts_bounded_memory(tiny_model, tmp_path):
    r, peak = _export(tiny_model, tmp_path, 200, 57)
    assert r.returncode == 1 and "row 57" in r.stderr  # reported, and the exit code says not all succeeded
    man = json.loads((tmp_path / "out200" / "manifest.json").read_text())
    assert len(man["samples"]) == 199 and [f["row"] for f in man["failures"]] == [57]
    assert len(list((tmp_path / "out200").glob("*.wav"))) == 199
    r20, peak20 = _export(tiny_model, tmp_path, 20, None)
    assert r20.returncode == 0
    print(f"peak RSS of the export: 20 rows {peak20:.0f} MB, 200 rows {peak:.0f} MB")
    assert peak - peak20 < 50, (peak20, peak)
