"""The plugin under damaged logs and concurrent clients."""

import threading
import time
import urllib.parse

import numpy as np
import tensorflow as tf

from tb_attention_plugin.writing import summary
from tensorboard_server import TensorBoard


def _write_run(path, steps, tokens=6):
    writer = tf.summary.create_file_writer(str(path))
    with writer.as_default():
        for step in range(steps):
            scores = np.full((2, 2, tokens, tokens), 1 / tokens, np.float32)
            summary.attention("layer", scores, step=step)
    writer.close()


def _ready(tb, runs):
    index = tb.wait_for_index(lambda index: {r["run"] for r in index["runs"]} >= set(runs))
    if not {r["run"] for r in index["runs"]} >= set(runs):
        raise TimeoutError(index)
    return index


def _serving(logdir, runs):
    """(TensorBoard on logdir once `runs` are listed by the tab, that index)."""
    tb = TensorBoard(logdir)
    try:
        tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
        return tb, _ready(tb, runs)
    except BaseException:
        tb.stop()
        raise


def test_a_corrupt_event_file_does_not_break_the_other_runs(tmp_path):
    logdir = tmp_path / "logs"
    _write_run(logdir / "good", 5)
    _write_run(logdir / "bad", 5)
    (event_file,) = (logdir / "bad").iterdir()
    data = event_file.read_bytes()
    event_file.write_bytes(data[: len(data) // 2] + b"\x00garbage\xff" * 10)  # truncated, then junk
    tb, index = _serving(logdir, ["good"])
    try:
        good = [r for r in index["runs"] if r["run"] == "good"][0]
        assert good["layers"][0]["steps"] == [0, 1, 2, 3, 4]
        status, _, _ = tb.get("/data/plugin/attention/maps?run=good&tag=layer&step=4&example=1")
        assert status == 200
    finally:
        tb.stop()


def _rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_twenty_concurrent_clients_for_thirty_seconds_get_no_errors_in_bounded_memory(tmp_path):
    logdir = tmp_path / "logs"
    _write_run(logdir / "run", 50, tokens=32)
    tb, _ = _serving(logdir, ["run"])
    try:
        statuses, rss, start = [], [], time.time()
        stop = start + 30

        def client(seed):
            rng = np.random.default_rng(seed)
            while time.time() < stop:
                route = rng.choice(["maps", "importance", "importance", "head_stats", "index"])
                params = dict(run="run", tag="layer", example=int(rng.integers(0, 2)), step=int(rng.integers(0, 50)))
                if route == "importance" and rng.random() < 0.5:
                    params.update(head=int(rng.integers(0, 3)), format="binary")
                status, _, _ = tb.get("/data/plugin/attention/%s?%s" % (route, urllib.parse.urlencode(params)))
                statuses.append(status)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        while time.time() < stop:
            rss.append((time.time() - start, _rss_mb(tb.process.pid)))
            time.sleep(1)
        for t in threads:
            t.join(60)
        assert len(statuses) > 100
        assert set(statuses) == {200}
        # Every answer of this small log is cached after the first seconds, so
        # TensorBoard's memory must level off: the second half of the run may
        # not grow by more than a few MB (no per-request leak).
        first_half = max(mb for t, mb in rss if t < 15)
        second_half = max(mb for t, mb in rss if t >= 15)
        print("TensorBoard RSS (s, MB):", [(round(t), round(mb)) for t, mb in rss])
        assert second_half - first_half < 32, rss
    finally:
        tb.stop()


def test_responses_are_consistent_while_training_writes(tmp_path):
    logdir = tmp_path / "logs"
    _write_run(logdir / "live", 1, tokens=8)
    tb, _ = _serving(logdir, ["live"])
    try:
        writer_done = threading.Event()

        def write_more():
            writer = tf.summary.create_file_writer(str(logdir / "live"))
            with writer.as_default():
                for step in range(1, 60):
                    scores = np.full((2, 2, 8, 8), 1 / 8, np.float32)
                    summary.attention("layer", scores, step=step)
                    writer.flush()
                    time.sleep(0.05)
            writer.close()
            writer_done.set()

        threading.Thread(target=write_more).start()
        checked = 0
        while not writer_done.is_set() or checked < 20:
            index = tb.get_json("/data/plugin/attention/index")
            steps = index["runs"][0]["layers"][0]["steps"]
            status, headers, body = tb.get("/data/plugin/attention/maps?run=live&tag=layer&step=%d&example=1" % steps[-1])
            assert status == 200
            heads, q, k = (int(n) for n in headers["X-Attention-Shape"].split(","))
            assert len(body) == heads * q * k == 2 * 8 * 8  # whole maps, never half a step
            importance = tb.get_json("/data/plugin/attention/importance?run=live&tag=layer&example=1&head=2")
            assert len(importance["values"]) == len(importance["steps"])
            assert importance["steps"] == sorted(set(importance["steps"]))
            checked += 1
        final = tb.get_json("/data/plugin/attention/index")["runs"][0]["layers"][0]["steps"]
        for _ in range(40):  # the reader catches up within a few reload intervals
            if final == list(range(60)):
                break
            time.sleep(0.5)
            final = tb.get_json("/data/plugin/attention/index")["runs"][0]["layers"][0]["steps"]
        assert final == list(range(60))
    finally:
        tb.stop()
