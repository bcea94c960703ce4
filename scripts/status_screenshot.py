#!/usr/bin/env python3
"""Screenshots clipserve's status page under load with headless Chromium and checks what it shows.

Starts `clipserve serve --backend cpu` on the tiny fixture model (port 0, the printed port is read back), drives
load with `clipserve bench serve` in the background, sends two bad requests so the error list has entries, then
takes a screenshot and dumps the DOM with headless Chromium and checks them:
  DOM: the model name in the header, a non-zero images/s figure, and chart elements with data points;
  PNG: exists, has the window size, and is not blank (many colours, most pixels not background, chart colours).
Exits non-zero with the reason on the first failed check. Only Python's standard library is used (the PNG is
decoded with zlib), so CI needs no pip packages.

    python3 scripts/status_screenshot.py [--bin .build/debug/clipserve] [--out .build/status-page]
    python3 scripts/status_screenshot.py --check-png FILE   # only the PNG checks (e.g. docs/status-page.png)
"""

import argparse
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "Tests/Fixtures/models/oc-tiny"
MODEL_NAME = "oc-tiny"
WIDTH, HEIGHT = 1280, 1000
CHARTS = ["chart-throughput", "chart-latency", "chart-queue", "chart-util"]


class CheckFailed(Exception):
    pass


def log(message):
    print(f"screenshot: {message}", flush=True)


# --- PNG -------------------------------------------------------------------------------------------------------


def decode_png(path):
    """(width, height, channels, rows of bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CheckFailed(f"{path} is not a PNG (first bytes {data[:8]!r})")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise CheckFailed(f"{path}: no IHDR or IDAT chunk")
    width, height, depth, color, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise CheckFailed(f"{path}: unsupported PNG (bit depth {depth}, colour type {color}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise CheckFailed(f"{path}: {len(raw)} bytes of pixel data, expected {height * (stride + 1)}")
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        elif kind != 0:
            raise CheckFailed(f"{path}: row {y} has unknown filter type {kind}")
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def check_png(path):
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise CheckFailed(f"no screenshot at {path}")
    width, height, channels, rows = decode_png(path)
    if (width, height) != (WIDTH, HEIGHT):
        raise CheckFailed(f"{path} is {width}x{height}, expected the window size {WIDTH}x{HEIGHT}")
    counts = {}
    for row in rows[::2]:
        for x in range(0, width * channels, channels * 2):
            pixel = row[x:x + 3]
            counts[pixel] = counts.get(pixel, 0) + 1
    total = sum(counts.values())
    background, most = max(counts.items(), key=lambda item: item[1])
    colours = len(counts)
    busy = 1 - most / total

    def near(target, tolerance=40):
        return sum(n for p, n in counts.items() if all(abs(p[i] - target[i]) <= tolerance for i in range(3)))

    # The dark header and the chart lines (blue images/s and p50, amber queue) must be there.
    dark = near((0x15, 0x1B, 0x28), 12)
    blue, amber = near((0x2F, 0x6F, 0xED)), near((0xE0, 0x8A, 0x1E))
    log(f"PNG {width}x{height}: {colours} colours, {busy:.0%} of pixels not background "
        f"#{background.hex()}, header {dark / total:.1%}, blue {blue}, amber {amber} sampled pixels")
    if colours < 64:
        raise CheckFailed(f"{path} looks blank: only {colours} distinct colours")
    if busy < 0.30:
        raise CheckFailed(f"{path} looks blank: {1 - busy:.0%} of pixels are the background colour")
    if dark / total < 0.02:
        raise CheckFailed(f"{path}: the page header is missing (dark pixels {dark / total:.1%})")
    if blue < 20 or amber < 5:
        raise CheckFailed(f"{path}: chart lines are missing (blue {blue}, amber {amber} sampled pixels)")


# --- DOM -------------------------------------------------------------------------------------------------------


def check_dom(dom):
    name = re.search(r'<h1 id="model-name">([^<]*)</h1>', dom)
    if not name or name.group(1) != MODEL_NAME:
        raise CheckFailed(f"DOM: header model name is {name.group(1) if name else 'missing'!r}, expected {MODEL_NAME!r}")
    if not re.search(r'<body[^>]*data-loaded="1"', dom):
        raise CheckFailed("DOM: the page never rendered /status.json (body has no data-loaded)")
    images = re.search(r'id="kpi-images"[^>]*data-value="([^"]*)"', dom)
    rate = float(images.group(1)) if images else 0.0
    if rate <= 0:
        raise CheckFailed(f"DOM: images/s is {images.group(1) if images else 'missing'!r} under load, expected > 0")
    points = {}
    for chart in CHARTS:
        tag = re.search(r'<svg[^>]*id="%s"[^>]*>(.*?)</svg>' % chart, dom, re.S)
        if not tag:
            raise CheckFailed(f"DOM: no <svg id={chart}>")
        count = re.search(r'data-points="(\d+)"', tag.group(0))
        points[chart] = int(count.group(1)) if count else 0
        if points[chart] == 0 or '<path class="series"' not in tag.group(1):
            raise CheckFailed(f"DOM: chart {chart} has no data ({points[chart]} points)")
    errors = len(re.findall(r'<span class="status', dom))
    log(f"DOM: model {name.group(1)}, {rate:.1f} images/s, chart points {points}, {errors} errors listed")
    if errors < 2:
        raise CheckFailed(f"DOM: {errors} entries in the error list, expected the 2 bad requests sent")


# --- the run ---------------------------------------------------------------------------------------------------


def find_chromium():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise CheckFailed("no chromium-headless-shell or chromium on PATH (make screenshot-deps installs it)")


def chromium(browser, url, flag, out, budget_ms):
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
        "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}", f"--virtual-time-budget={budget_ms}",
    ]
    if flag == "screenshot":
        command += [f"--screenshot={out}", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=os.path.dirname(out))
    else:
        command += ["--dump-dom", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        with open(out, "w") as f:
            f.write(result.stdout)
    if result.returncode != 0:
        raise CheckFailed(f"{os.path.basename(browser)} --{flag} exited {result.returncode}: {result.stderr[-2000:]}")


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def post(url, body, content_type):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def start_server(binary, out):
    server_log = open(os.path.join(out, "server.log"), "w")
    server = subprocess.Popen(
        [binary, "serve", "--backend", "cpu", "--model", MODEL, "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=server_log, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120
    port = None
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            if server.poll() is not None:
                raise CheckFailed(f"clipserve serve exited {server.returncode} before listening; see {server_log.name}")
            continue
        server_log.write(line)
        match = re.match(r"clipserve listening on http://[^:]+:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    if port is None:
        raise CheckFailed("clipserve serve printed no port within 120 s")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [server_log.write(line) for line in server.stdout], daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if get(base + "/health")[0] == 200:
                return server, base
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise CheckFailed("server never became ready (/health)")


def run(args):
    binary = os.path.abspath(args.bin)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if not os.access(binary, os.X_OK):
        raise CheckFailed(f"{binary} is not built (swift build --product clipserve)")
    browser = find_chromium()
    server, base = start_server(binary, out)
    log(f"server at {base}, browser {browser}")
    bench = None
    try:
        bench_log = open(os.path.join(out, "bench.log"), "w")
        bench = subprocess.Popen(
            [binary, "bench", "serve", "--url", base, "--concurrency", str(args.concurrency), "--seconds",
             str(args.load_seconds + 30), "--images", "Tests/Fixtures/images", "--api", "raw"],
            stdout=bench_log, stderr=subprocess.STDOUT, cwd=ROOT)
        # Two answers for the error list: a wrong content type (415) and a file that is not an image (400).
        post(base + "/embed", b"hello", "text/plain")
        post(base + "/embed", b"not an image at all", "image/jpeg")
        time.sleep(args.load_seconds)
        if bench.poll() is not None:
            raise CheckFailed(f"bench serve exited {bench.returncode} early; see {bench_log.name}")
        status = get(base + "/status.json")[1].decode()
        with open(os.path.join(out, "status.json"), "w") as f:
            f.write(status)
        png, dom = os.path.join(out, "status-page.png"), os.path.join(out, "status-page.html")
        chromium(browser, base + "/", "screenshot", png, args.budget_ms)
        chromium(browser, base + "/", "dump-dom", dom, args.budget_ms)
    finally:
        if bench and bench.poll() is None:
            bench.send_signal(signal.SIGINT)
            try:
                bench.wait(timeout=10)
            except subprocess.TimeoutExpired:
                bench.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    with open(dom) as f:
        check_dom(f.read())
    check_png(png)
    log(f"OK: {png}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build/debug/clipserve"))
    parser.add_argument("--out", default=os.path.join(ROOT, ".build/status-page"))
    parser.add_argument("--load-seconds", type=float, default=8, help="load before the screenshot")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--budget-ms", type=int, default=3000, help="Chromium's --virtual-time-budget")
    parser.add_argument("--check-png", metavar="FILE", help="only check this PNG")
    args = parser.parse_args()
    try:
        if args.check_png:
            check_png(args.check_png)
            log(f"OK: {args.check_png}")
        else:
            run(args)
    except CheckFailed as failure:
        print(f"screenshot: FAIL: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
