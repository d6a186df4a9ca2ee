"""First paint of the tab, two or more versions of the plugin interleaved.

    python -m bench.first_paint_versions --log DIR [--demo-logdir DIR] [--rounds 5] \
        before=/path/to/checkout after=.

Each NAME=CHECKOUT is served by its own real `tensorboard` (PYTHONPATH=
CHECKOUT, so that checkout's plugin and frontend answer), and the visits
alternate between versions, so that the machine's load falls on every
version alike (on 2 shared cores it moves the figures more than most
changes do). `--log` is a log kept by `python -m bench.frontend_paint
--logdir DIR` (its 12 heads x 512 tokens layer is opened at its last step,
as a returning user would: localStorage names it); the demo logdir is opened
as a new user would. Medians of bench.frontend_paint.first_paint: from the
tab's iframe navigation to its first painted maps, and the tab's own part
(after it asked for index.js); cold: a new browser context, warm: a second
visit in it.
"""

import argparse
import os
import statistics
import sys

from bench.frontend_paint import FIRST_PAINT, STEPS, first_paint, launch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from tensorboard_server import TensorBoard  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def run(log, demo_logdir, versions, rounds):
    heads, tokens = FIRST_PAINT
    logs = [("%d x %d layer" % FIRST_PAINT, log,
             {"run": "h%d_t%d" % (heads, tokens), "tag": "layer", "example": 0, "step": STEPS - 1})]
    if demo_logdir:
        logs.append(("demo logdir", demo_logdir, None))
    servers = {}
    try:
        for name, checkout in versions.items():
            os.environ["PYTHONPATH"] = os.path.abspath(checkout)
            for log_name, logdir, _ in logs:
                servers[name, log_name] = TensorBoard(logdir)
        for tb in servers.values():
            tb.wait_for(lambda listing: listing.get("attention", {}).get("enabled"))
        times = {}
        with sync_playwright() as p:
            browser = launch(p)
            for _ in range(rounds):
                for log_name, _, state in logs:
                    for how in ("cold", "warm"):
                        for name in versions:
                            painted, asked = first_paint(browser, servers[name, log_name].url, state, warm=how == "warm")
                            times.setdefault((log_name, how, name), []).append((painted, painted - asked))
            browser.close()
    finally:
        for tb in servers.values():
            tb.stop()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", required=True)
    parser.add_argument("--demo-logdir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("versions", nargs="+", help="NAME=CHECKOUT")
    args = parser.parse_args()
    versions = dict(v.split("=", 1) for v in args.versions)
    times = run(args.log, args.demo_logdir, versions, args.rounds)
    print("| log | visit | " + " | ".join("%s: first paint / tab's own (ms)" % n for n in versions) + " |")
    print("|---|---|" + "---|" * len(versions))
    for log_name, how in dict.fromkeys((k[0], k[1]) for k in times):
        cells = []
        for name in versions:
            t = times[log_name, how, name]
            cells.append("%.0f / %.0f" % (statistics.median(p for p, _ in t), statistics.median(o for _, o in t)))
        print("| %s | %s | %s |" % (log_name, how, " | ".join(cells)))


if __name__ == "__main__":
    main()
