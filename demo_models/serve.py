"""Starts TensorBoard on a logdir and prints the one URL to open (`make demo`).

    python -m demo_models.serve --logdir logs --port 6006

TensorBoard's own start-up output (TensorFlow's C++ notices, the fast-loading
note) goes to a log file, named in the last line; the line to read is the
URL, printed once the Attention tab has data to show. Ctrl+C (or SIGTERM)
stops TensorBoard. Imports neither Keras nor TensorFlow: it starts in well
under a second.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def attention_enabled(url):
    """True when TensorBoard at `url` lists the attention plugin as active."""
    try:
        with urllib.request.urlopen(url + "/data/plugins_listing", timeout=5) as reply:
            return bool(json.load(reply).get("attention", {}).get("enabled"))
    except (OSError, ValueError):
        return False


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "(no output)"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(logdir, port, host="127.0.0.1", wait_s=120):
    """Runs TensorBoard until interrupted; returns its exit status (0 on Ctrl+C)."""
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    log_path = os.path.join(tempfile.gettempdir(), "tb-attention-tensorboard-%d.log" % port)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [tensorboard, "--logdir", logdir, "--port", str(port), "--host", host],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = "http://%s:%d" % (host, port)
    try:
        deadline = time.monotonic() + wait_s
        while not attention_enabled(url):
            if process.poll() is not None:
                print("TensorBoard stopped before serving; its last line was: %s\nIf port %d is in use, "
                      "pick another one, e.g. make demo PORT=%d; its whole log is in %s."
                      % (_last_line(log_path), port, port + 1, log_path), flush=True)
                return process.returncode or 1
            if time.monotonic() > deadline:
                print("TensorBoard is up but shows no attention data in %s after %d s: check that "
                      "a demo wrote there (make demo-train)." % (logdir, wait_s), flush=True)
                break
            time.sleep(0.5)
        print("Open %s/#attention  (TensorBoard serving %s; Ctrl+C stops it; its log: %s)"
              % (url, logdir, log_path), flush=True)
        process.wait()
        return process.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve a logdir with TensorBoard and print the URL.")
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a test or process manager stops it like Ctrl+C
    sys.exit(serve(args.logdir, args.port, args.host))


if __name__ == "__main__":
    main()
