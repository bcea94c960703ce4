#!/usr/bin/env python3
"""Takes docs/status-page.png: the status page of a release build serving MODEL on the CPU after a couple of
minutes of varying load (three phases of `clipserve bench serve`, one per API, with a few bad requests), with one
image embedded through the page's own file box (set over Chromium's --remote-debugging-pipe, as a user's drop
would) so the stage timings show. The PNG is checked like `make screenshot` checks its own.

    swift build -c release --product clipserve
    python3 scripts/status_docs_screenshot.py [--model random:ViT-B-32] [--out docs/status-page.png]
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import status_screenshot as shot

PHASES = [(2, 40, "raw"), (6, 50, "openai"), (3, 40, "kserve")]  # (concurrency, seconds, api)


class DevToolsPipe:
    """Chromium's DevTools protocol over --remote-debugging-pipe: NUL-terminated JSON on fds 3 (in) and 4 (out)."""

    def __init__(self, browser):
        to_browser, self.into = os.pipe()
        self.out, from_browser = os.pipe()

        def wire():
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             f"--window-size={shot.WIDTH},{shot.HEIGHT}", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self.pending, self.last_id = b"", 0

    def call(self, method, params=None, session=None):
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.into, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.pending:
                chunk = os.read(self.out, 1 << 20)
                if not chunk:
                    raise shot.CheckFailed(f"the browser closed its DevTools pipe during {method}")
                self.pending += chunk
            raw, self.pending = self.pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise shot.CheckFailed(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_for(self, session, expression, what, seconds=20):
        for _ in range(int(seconds * 10)):
            result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
            if result["result"].get("value"):
                return
            time.sleep(0.1)
        raise shot.CheckFailed(f"the page never showed {what}")

    def close(self):
        self.process.kill()
        self.process.wait()


def screenshot_after_embedding(browser, url, image, png):
    pipe = DevToolsPipe(browser)
    try:
        target = pipe.call("Target.createTarget", {"url": url})["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        pipe.call("Emulation.setDeviceMetricsOverride",
                  {"width": shot.WIDTH, "height": shot.HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
        pipe.wait_for(session, "document.body && document.body.dataset.loaded === '1'", "its first data")
        root = pipe.call("DOM.getDocument", {}, session)["root"]["nodeId"]
        field = pipe.call("DOM.querySelector", {"nodeId": root, "selector": "#file"}, session)["nodeId"]
        pipe.call("DOM.setFileInputFiles", {"files": [image], "nodeId": field}, session)
        pipe.wait_for(session, "document.getElementById('result').style.display === 'block'", "the embedding")
        time.sleep(1.5)  # one more refresh of the charts
        data = pipe.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(png, "wb") as f:
            f.write(base64.b64decode(data))
    finally:
        pipe.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(shot.ROOT, ".build/release/clipserve"))
    parser.add_argument("--model", default="random:ViT-B-32")
    parser.add_argument("--image", default=os.path.join(shot.ROOT, "examples/rgb_baseline.jpg"))
    parser.add_argument("--out", default=os.path.join(shot.ROOT, "docs/status-page.png"))
    args = parser.parse_args()
    shot.MODEL = args.model
    work = tempfile.mkdtemp(prefix="clipserve-status-")
    browser = shot.find_chromium()
    server, base = shot.start_server(os.path.abspath(args.bin), work)
    shot.log(f"server at {base}, logs in {work}")
    bench_log = open(os.path.join(work, "bench.log"), "w")

    def bench(concurrency, seconds, api):
        return subprocess.Popen(
            [os.path.abspath(args.bin), "bench", "serve", "--url", base, "--concurrency", str(concurrency), "--seconds", str(seconds),
             "--images", "examples", "--api", api], stdout=bench_log, stderr=subprocess.STDOUT, cwd=shot.ROOT)

    try:
        for index, (concurrency, seconds, api) in enumerate(PHASES):
            shot.log(f"load: {concurrency} clients, {seconds} s, {api}")
            load = bench(concurrency, seconds, api)
            if index == 1:
                time.sleep(10)
                shot.post(base + "/embed", b"hello", "text/plain")
                time.sleep(5)
                shot.post(base + "/embed", b"\xff\xd8\xff truncated", "image/jpeg")
                shot.post(base + "/v1/embeddings", b'{"input": "a cat"}', "application/json")
            if index == 2:
                time.sleep(20)
                shot.post(base + "/embed", b"GIF89a....", "image/gif")
            load.wait()
        load = bench(4, 60, "raw")
        time.sleep(8)
        screenshot_after_embedding(browser, base + "/", os.path.abspath(args.image), os.path.abspath(args.out))
        load.send_signal(signal.SIGINT)
        load.wait()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    shot.check_png(args.out)
    shot.log(f"OK: {args.out}")


if __name__ == "__main__":
    try:
        main()
    except shot.CheckFailed as failure:
        print(f"screenshot: FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
