"""Make samples/ui.png: start `audioldm ui` on the shipped model, generate two notes in headless Chromium, and save
a screenshot of the page. Needs the `.[ui]` extra, selenium, and Debian's chromium + chromium-driver (nothing is
downloaded).

    python samples/ui_screenshot.py [--model MODEL] [--out samples/ui.png] [--chromedriver /usr/bin/chromedriver]
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--model", default=None, help="model folder (default: the shipped one)")
p.add_argument("--out", default=str(Path(__file__).parent / "ui.png"))
p.add_argument("--prompt", default="a violin playing C5, loud")
p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
p.add_argument("--chromedriver", default=shutil.which("chromedriver") or "chromedriver")
args = p.parse_args()

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
work = Path(tempfile.mkdtemp(prefix="audioldm-ui-shot-"))
cmd = [sys.executable, "-m", "audioldm.cli", "ui", "--port", str(port), "--out", str(work / "out"), "--quiet"]
server = subprocess.Popen(cmd + (["--model", args.model] if args.model else []))
try:
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if server.poll() is not None:
            raise SystemExit("error: audioldm ui exited before serving")
        time.sleep(0.2)
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--hide-scrollbars"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(args.chromedriver), options=opts)
    try:
        d.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt textarea"))
        d.find_element(By.CSS_SELECTOR, "#prompt textarea").send_keys(args.prompt)
        num = d.find_element(By.CSS_SELECTOR, "#num input[type=number]")
        num.clear()
        num.send_keys("2")
        d.find_element(By.ID, "generate").click()
        WebDriverWait(d, 300).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "error")))
        time.sleep(2)  # waveforms and images finish drawing
        d.set_window_size(1280, 2400)  # tall enough for the whole page; the shot is cropped to the app itself
        time.sleep(1)
        app = d.find_element(By.CSS_SELECTOR, ".gradio-container")
        tmp = Path(args.out).with_name(f".{Path(args.out).name}.tmp.png")
        app.screenshot(str(tmp))
        bottom = d.execute_script("var a = arguments[0].getBoundingClientRect(), b = document.getElementById("
                                  "'download').getBoundingClientRect(); return b.bottom - a.top + 24;", app)
        from PIL import Image  # (a Gradio dependency) crop the empty space below the last element
        with Image.open(tmp) as im:
            im.crop((0, 0, im.width, min(im.height, int(bottom)))).save(tmp, format="PNG", optimize=True)
        tmp.replace(args.out)
        print(f"wrote {args.out} ({d.find_element(By.ID, 'status').text.splitlines()[0]})")
    finally:
        d.quit()
finally:
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
