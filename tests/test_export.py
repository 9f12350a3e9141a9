"""`audioldm generate` / `audioldm export`: files, manifest, gallery (opened in headless Chromium), and errors."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioldm.cli import main
from audioldm.export import ExportError, read_prompt_file, sanitize_name
from audioldm.files import folder_content_hash


def test_sanitize_name():
    taken = set()
    assert sanitize_name("Piano C4, loud!", taken) == "piano-c4-loud"
    assert sanitize_name("piano c4 loud", taken) == "piano-c4-loud-2"
    for bad in ("../../etc/passwd", ".hidden", "a\\b/c", "", "..."):
        s = sanitize_name(bad, taken)
        assert "/" not in s and "\\" not in s and not s.startswith(".") and s
    long = sanitize_name("x" * 500, taken)
    assert len(long) <= 60 and len(sanitize_name("x" * 500, taken)) <= 60
    assert len(taken) == len(set(taken))


def test_read_prompt_files(tmp_path):
    (tmp_path / "p.txt").write_text("# comment\npiano c4\n\n  flute  \n")
    assert [r["prompt"] for r in read_prompt_file(tmp_path / "p.txt")] == ["piano c4", "flute"]
    (tmp_path / "p.jsonl").write_text('{"prompt": "a", "seed": 3}\n{"labels": {"pitch": 60}}\n')
    rows = read_prompt_file(tmp_path / "p.jsonl")
    assert rows[0]["seed"] == 3 and rows[1]["labels"] == {"pitch": 60}
    (tmp_path / "p.csv").write_text("prompt,seed,instrument,pitch\n,1,flute,60\nhello,,,\n")
    rows = read_prompt_file(tmp_path / "p.csv")
    assert rows[0]["labels"] == {"instrument": "flute", "pitch": 60} and rows[0]["seed"] == 1
    assert rows[1]["prompt"] == "hello" and "labels" not in rows[1]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{oops\n')
    with pytest.raises(ExportError, match=r"bad.jsonl:2"):
        read_prompt_file(tmp_path / "bad.jsonl")
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ExportError, match="no prompts"):
        read_prompt_file(tmp_path / "empty.txt")
    (tmp_path / "seed.jsonl").write_text('{"prompt": "a", "seed": "x"}\n')
    with pytest.raises(ExportError, match="seed"):
        read_prompt_file(tmp_path / "seed.jsonl")
    with pytest.raises(ExportError, match="not found"):
        read_prompt_file(tmp_path / "missing.txt")


def test_generate_command(tiny_model, tmp_path, capsys):
    out = tmp_path / "a.wav"
    args = ["generate", "piano c4", "-o", str(out), "--model", str(tiny_model), "--duration", "0.4", "--steps", "3",
            "--seed", "5", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    wav, sr = sf.read(out)
    assert sr == 16000 and len(wav) == 6400 and np.isfinite(wav).all()
    before = out.read_bytes()
    assert main(args + ["--seed", "6"]) == 2 and "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before  # nothing overwritten
    assert main(args + ["--seed", "6", "--overwrite"]) == 0 and out.read_bytes() != before
    assert main(["generate", "--labels", "pitch=60", "-o", str(tmp_path / "b.wav"), "--model", str(tiny_model),
                 "--quiet"]) == 2
    assert "text-conditioned" in capsys.readouterr().err
    assert main(["generate", "x", "-o", str(tmp_path / "c.wav"), "--model", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["generate", "x", "-o", str(tmp_path / "d.wav"), "--model", str(tiny_model), "--num", "2",
                 "--steps", "2", "--quiet"]) == 0
    assert (tmp_path / "d_1.wav").exists() and (tmp_path / "d_2.wav").exists()


def _open_in_browser(index: Path, chromium: str) -> str:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--virtual-time-budget=10000", "--dump-dom", index.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    prompts = d / "prompts.jsonl"
    prompts.write_text('{"prompt": "piano c4", "seed": 11}\n{"prompt": "../../etc/passwd <b>"}\n'
                       '{"labels": {"pitch": 60}}\n{"prompt": "piano c4"}\n')
    code = main(["export", "--prompts", str(prompts), "--out", str(d / "out"), "--model", str(tiny_model),
                 "--duration", "0.3", "--steps", "3", "--num", "2", "--quiet"])
    return d, prompts, code


def test_export_command(exported, tiny_model, capsys):
    d, prompts, code = exported
    out = d / "out"
    assert code == 1  # one row (labels for a text model) failed, the others were exported
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["samples"]) == 6 and len(man["failures"]) == 1 and man["failures"][0]["row"] == 2
    names = [s["file"] for s in man["samples"]]
    assert len(set(names)) == 6 and all(re.fullmatch(r"[a-z0-9][a-z0-9-]*\.wav", n) for n in names)
    assert [s["seed"] for s in man["samples"][:2]] == [11, 12]
    for s in man["samples"]:
        assert (out / s["file"]).is_file() and (out / s["spectrogram"]).read_bytes()[:4] == b"\x89PNG"
        assert s["steps"] == 3 and s["duration"] == 0.3 and s["sampler"] == "dpmpp_2m"
    # a portable id: the folder's name and content hash, no path of this machine
    assert man["model_id"] == f"tiny@{folder_content_hash(tiny_model)}" and man["audioldm_version"]
    assert str(tiny_model.parent) not in json.dumps(man)
    # what the text model read: the words it kept, and the ones outside its vocabulary
    assert man["samples"][0]["tokens"] == ["piano", "c4"] and man["samples"][0]["unknown_words"] == []
    assert "passwd" in man["samples"][2]["unknown_words"]
    html = (out / "index.html").read_text()
    assert "&lt;b&gt;" in html and "<b>" not in html  # prompts are escaped
    # a second export into the same folder refuses to overwrite, and leaves the files alone
    before = (out / names[0]).read_bytes()
    assert main(["export", "--prompts", str(prompts), "--out", str(out), "--model", str(tiny_model), "--quiet"]) == 2
    assert "overwrite" in capsys.readouterr().err and (out / names[0]).read_bytes() == before


def test_gallery_loads_in_chromium(exported, chromium):
    d, _, _ = exported
    out = d / "out"
    dom = _open_in_browser(out / "index.html", chromium)
    n = len(json.loads((out / "manifest.json").read_text())["samples"])
    assert len(re.findall(r'data-ok="1"', dom)) == 2 * n, dom[-2000:]  # every audio element and image loaded
    assert 'data-bad="0"' in dom and 'data-pending="0"' in dom
    # the check can fail: a gallery with a missing file reports it
    broken = d / "broken"
    shutil.copytree(out, broken)
    next(broken.glob("*.wav")).unlink()
    dom = _open_in_browser(broken / "index.html", chromium)
    assert 'data-bad="1"' in dom and len(re.findall(r'data-ok="0"', dom)) == 1
