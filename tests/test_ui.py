"""`audioldm ui`: the request logic (Session) on the shipped model, the start-up checks, and the page itself driven
in headless Chromium through Selenium (Debian's chromium + chromium-driver; nothing is downloaded)."""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audioldm
from audioldm.pipeline import AudioLDM
from audioldm.ui.session import Session, describe_reads

MODEL = Path(audioldm.__file__).parent / "pretrained" / "gm-notes"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return Session(AudioLDM.from_pretrained(MODEL), tmp_path_factory.mktemp("ui_out"))


def _settings(**kw):
    base = {"duration": 1.0, "steps": 3, "guidance": 3.0, "sampler": "dpmpp_2m", "seed": 5, "random_seed": False,
            "num": 1}
    return Session.settings(**{**base, **kw})


def test_session_maps_the_form_to_requests(session):
    widgets = [f.name for f in session.fields]
    assert widgets == ["instrument", "pitch", "velocity"]  # from the conditioner config, in order
    assert session.request("  a flute playing C5 ", True, ["violin", 60, 80]) == ("a flute playing C5", None)
    assert session.request("", True, ["violin", 60.0, 80]) == (None, {"instrument": "violin", "pitch": 60,
                                                                      "velocity": 80})
    with pytest.raises(ValueError, match="prompt or tick"):
        session.request("", False, ["violin", 60, 80])
    s = _settings(seed=None, random_seed=True)
    assert isinstance(s["seed"], int) and _settings()["seed"] == 5
    with pytest.raises(ValueError, match="number of samples"):
        _settings(num=9)


def test_session_writes_an_export_folder_and_zip(session):
    rec = session.generate("", "", True, ["flute", 67, 100], _settings(num=2, seed=11))
    assert [s["seed"] for s in rec["samples"]] == [11, 12]
    for wav in rec["wavs"]:
        x, sr = sf.read(wav)
        assert sr == 16000 and len(x) == 16000 and np.sqrt(np.mean(x ** 2)) > 1e-3
    man = json.loads((rec["folder"] / "manifest.json").read_text())
    assert man["samples"][0]["labels"] == {"instrument": "flute", "pitch": 67, "velocity": 100}
    assert man["samples"][0]["steps"] == 3 and man["failures"] == []
    names = zipfile.ZipFile(rec["zip"]).namelist()
    assert {f"{rec['folder'].name}/{n}" for n in ("manifest.json", "index.html", "sample_1.wav", "sample_2.png")} \
        <= set(names)
    assert "sample 2" in describe_reads(rec["samples"]) and '"flute"' in describe_reads(rec["samples"])
    again = session.generate("", "", True, ["flute", 67, 100], _settings(num=1, seed=11))
    assert again["folder"] != rec["folder"]  # nothing overwritten
    np.testing.assert_allclose(sf.read(again["wavs"][0])[0], sf.read(rec["wavs"][0])[0], atol=2e-3)


def test_session_audio_to_audio(session, tmp_path):
    src = session.generate("a piano playing C4", "", False, [None] * 3, _settings(seed=3))["wavs"][0]
    x = sf.read(src)[0]
    out = session.edit("inpaint", src, "a piano playing C4", "", False, [None] * 3, _settings(), start=0.5, end=0.75)
    y = sf.read(out["wavs"][0])[0]
    assert len(y) == len(x) and np.allclose(y[:7000], x[:7000], atol=1e-4)  # kept outside [0.5, 0.75) s
    assert out["samples"][0]["mode"] == "inpaint" and out["samples"][0]["labels"]["instrument"] == "piano"
    for mode, kw in (("transform", {"strength": 0.5}), ("super_resolve", {"cutoff_hz": 3000})):
        rec = session.edit(mode, src, "", "", True, ["organ", 60, 80], _settings(), **kw)
        assert rec["samples"][0]["mode"] == mode and len(sf.read(rec["wavs"][0])[0]) == len(x)
    with pytest.raises(ValueError, match="upload"):
        session.edit("transform", None, "a piano", "", False, [], _settings())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ui(tmp_path, *args, port):
    env = {**os.environ, "TMPDIR": str(tmp_path), "HOME": str(tmp_path), "GRADIO_TEMP_DIR": str(tmp_path / "gr")}
    cmd = [sys.executable, "-m", "audioldm.cli", "ui", "--port", str(port), "--quiet", *args]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_bad_model_folder_fails_before_the_server_starts(tmp_path):
    (tmp_path / "notamodel").mkdir()
    port = _free_port()
    proc = _ui(tmp_path, "--model", str(tmp_path / "notamodel"), port=port)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "notamodel" in out and "Running on" not in out
    assert not _listening(port)


def test_ui_refuses_a_non_empty_out_folder(tmp_path, capsys):
    from audioldm.cli import main
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["ui", "--out", str(tmp_path)]) == 2
    assert "must be a new or empty folder" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    proc = _ui(tmp_path, "--model", str(MODEL), "--out", str(tmp_path / "out"), port=port)
    t0 = time.time()
    while not _listening(port):
        if proc.poll() is not None or time.time() - t0 > 120:
            proc.kill()
            pytest.fail(f"audioldm ui did not start: {proc.communicate()[0]}")
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/", proc, tmp_path
    proc.terminate()
    proc.wait(timeout=30)
    assert not _listening(port)  # stopped


def _driver(chromium, chromedriver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def test_page_in_headless_chromium(server, chromium, chromedriver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, proc, tmp = server
    d = _driver(chromium, chromedriver)
    try:
        def fill(prompt, steps="4", click=True):
            d.get(url)
            WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))
            for sel, value in (("#prompt textarea", prompt), ("#steps input", steps), ("#duration input", "1.0")):
                box = d.find_element(By.CSS_SELECTOR, sel)
                box.clear()
                box.send_keys(value)
            if click:
                d.find_element(By.ID, "generate").click()

        def finished(d):
            text = d.find_element(By.ID, "status").text
            return text if text.startswith(("Done", "error")) else False

        # nothing is fetched from outside this server (fonts, scripts, analytics)
        fill("a violin playing C5, loud")
        resources = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(r.startswith(url.rstrip("/")) for r in resources), resources
        assert WebDriverWait(d, 120).until(finished).startswith("Done")
        link = WebDriverWait(d, 30).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#sample-1-audio a[download]").get_attribute("href"))
        assert d.find_elements(By.CSS_SELECTOR, "#sample-1-audio audio")  # the player
        x, sr = sf.read(io.BytesIO(urllib.request.urlopen(link, timeout=30).read()))
        assert link.endswith(".wav") and sr == 16000 and len(x) == 16000  # the requested 1.0 s
        assert np.sqrt(np.mean(x ** 2)) > 1e-3  # not silent
        assert '"violin"' in d.find_element(By.ID, "reads").text  # what the model read
        zip_link = d.find_element(By.CSS_SELECTOR, "#download a").get_attribute("href")
        assert "manifest.json" in " ".join(zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(zip_link).read()))
                                           .namelist())

        # a bad prompt: the model's own message in the page, and the server keeps serving
        fill("a kazoo solo")
        text = WebDriverWait(d, 120).until(finished)
        assert text.startswith("error") and "kazoo" in text and "names nothing this model knows" in text

        # two quick requests (two tabs, clicked one after the other) are queued and both finish
        fill("a flute playing G4", steps="25", click=False)
        d.switch_to.new_window("tab")
        fill("a trumpet playing C4, soft", steps="25", click=False)
        tabs = d.window_handles
        for tab in tabs:
            d.switch_to.window(tab)
            d.find_element(By.ID, "generate").click()
        texts = []
        for tab in tabs:
            d.switch_to.window(tab)
            texts.append(WebDriverWait(d, 120).until(finished))
        assert all(t.startswith("Done") for t in texts) and texts[0] != texts[1], texts  # two request folders
    finally:
        d.quit()
    assert proc.poll() is None  # still serving after the error
    written = {p.relative_to(tmp).parts[0] for p in tmp.rglob("*")}  # the server wrote only under the test's folder
    assert {"out", "gr"} <= written <= {"out", "gr", ".cache", ".config", ".local"}, written


def test_request_limits_are_checked_before_any_work(session, tmp_path):
    """Steps and duration are bounded; an upload is refused from its header (length) or size, before its samples
    are read."""
    import soundfile as sf

    from audioldm.ui import session as ui_session

    with pytest.raises(ValueError, match="steps must be 1 to 200"):
        _settings(steps=100000)
    with pytest.raises(ValueError, match="at most 60 s"):
        _settings(duration=600)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(8000 * 61, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"long.wav: 61.0 s long, over the 60 s limit"):
        session.edit("transform", str(long), "violin C5", None, False, [], _settings())
    old = ui_session.MAX_UPLOAD_MB
    ui_session.MAX_UPLOAD_MB = 0.5
    try:
        with pytest.raises(ValueError, match="over the 0.5 MB upload limit"):
            session.edit("transform", str(long), "violin C5", None, False, [], _settings())
    finally:
        ui_session.MAX_UPLOAD_MB = old


def test_request_folders_are_pruned(tmp_path):
    s = Session(AudioLDM.from_pretrained(MODEL), tmp_path / "out", keep=2)
    for _ in range(3):
        s.generate("violin C5", None, False, [], _settings(duration=0.3, steps=1))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "request_0002", "request_0002.zip", "request_0003", "request_0003.zip"]


def test_loop_box_and_continue_mode(session, tmp_path):
    """The page's seamless-loop box reaches generate(loop=True); the audio-to-audio tab continues a clip (kept
    exactly) by the seconds asked; the loop box is refused for an edit, naming the mode."""
    import soundfile as sf

    rec = session.generate("a violin playing C5", None, False, [], _settings(duration=2.5, steps=2, loop=True))
    man = json.loads((rec["folder"] / "manifest.json").read_text())
    assert man["samples"][0]["loop"] is True
    given = tmp_path / "given.wav"
    x = sf.read(rec["wavs"][0], dtype="float32")[0]
    sf.write(given, x, 16000, subtype="FLOAT")
    rec = session.edit("continue", str(given), "a violin playing C5", None, False, [], _settings(steps=2),
                       seconds=1.0)
    y = sf.read(rec["wavs"][0], dtype="float32")[0]
    assert len(y) == len(x) + 16000 and np.abs(y[:len(x)] - x).max() < 1e-4  # (the export writes 16-bit WAV)
    with pytest.raises(ValueError, match="transform: the seamless-loop box applies to Generate"):
        session.edit("transform", str(given), "violin C5", None, False, [], _settings(loop=True))
