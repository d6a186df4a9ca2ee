"""Starts the real `tensorboard` program on a free loopback port."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoard:
    def __init__(self, logdir, *flags):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        self.log = open(os.path.join(str(logdir), "..", "tensorboard-%d.log" % self.port), "w")
        self.process = subprocess.Popen(
            [tensorboard, "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(self.port), "--reload_interval", "1", *flags],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_for(self, predicate, timeout=90):
        """Polls the plugins listing until predicate(listing) is true."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("tensorboard exited with %s" % self.process.returncode)
            with contextlib.suppress(OSError, ValueError):
                if predicate(self.get_json("/data/plugins_listing")):
                    return
            time.sleep(0.5)
        raise TimeoutError("tensorboard did not get ready")

    def wait_for_index(self, ready, tries=120):
        """Waits for the Attention tab, then polls /index until ready(index)
        (every 0.5 s, `tries` times); returns the last index either way."""
        self.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
        for _ in range(tries):
            index = self.get_json("/data/plugin/attention/index")
            if ready(index):
                break
            time.sleep(0.5)
        return index

    def get(self, path):
        """(status, headers, body bytes); 4xx/5xx are returned, not raised."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get_json(self, path):
        status, _, body = self.get(path)
        if status != 200:
            raise ValueError("%s -> %d %s" % (path, status, body[:200]))
        return json.loads(body)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@contextlib.contextmanager
def serving(logdir, runs, *flags):
    """The real tensorboard on `logdir` once /index lists `runs` runs;
    stopped on leaving. What each browser suite's module fixture yields."""
    tb = TensorBoard(logdir, *flags)
    try:
        index = tb.wait_for_index(lambda index: len(index["runs"]) == runs)
        # A wrong count would wait the whole minute and go on: said instead.
        listed = [r["run"] for r in index["runs"]]
        assert len(listed) == runs, "expected %d runs in /index, it lists %s" % (runs, listed)
        yield tb
    finally:
        tb.stop()
