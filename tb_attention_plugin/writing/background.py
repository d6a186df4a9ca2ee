"""The background writer: the part of a capture that does not need the
model (serializing, encoding, writing the event file) runs off the training
thread, one capture at a time, in the order the captures were taken.

One writer serves every AttentionCallback of the process, so captures of a
fit that raised are written before those of the next fit on the same
log_dir (a notebook's next cell), whichever callback took them.

Nothing captured is lost on any way out of a fit: a fit that ends waits for
its captures (`wait`); after a fit that raised or was interrupted the thread
goes on writing what is queued; and it is not a daemon thread, so the
interpreter waits for it before exiting. Only a killed process loses what
was still queued (at most `MAX_PENDING` + 1 captures: every capture written
is flushed at once).
"""

import collections
import logging
import threading

logger = logging.getLogger(__name__)

# Captures waiting to be written. A capture holds the probe's float32 maps
# (BERT-base with one example: 12 x 12 x 512 x 512 x 4 B = 151 MB), so the
# queue is short; when it is full the training thread waits, which only
# happens when captures are taken faster than they can be written (every
# step on a large model), and then training runs at the writer's pace
# instead of memory growing without bound.
MAX_PENDING = 2


class SerialWriter:
    """Runs submitted jobs one at a time, in order, on a thread that exists
    only while there is work (so an idle process holds no extra thread)."""

    def __init__(self, max_pending=MAX_PENDING, name="tb-attention-writer"):
        self._max_pending = max_pending
        self._name = name
        self._jobs = collections.deque()
        self._changed = threading.Condition()
        self._thread = None  # alive while jobs are queued or one is running

    def submit(self, job):
        """Queues job(), a callable that handles its own errors. Blocks while
        MAX_PENDING jobs are waiting."""
        with self._changed:
            while len(self._jobs) >= self._max_pending:
                self._changed.wait()
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=False)
                self._thread.start()

    def wait(self):
        """Blocks until every job submitted so far has run. Called from a
        job itself it would wait for itself: refused."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("SerialWriter.wait() from its own thread")
        with self._changed:
            while self._thread is not None:
                self._changed.wait()

    def _run(self):
        while True:
            with self._changed:
                if not self._jobs:
                    self._thread = None
                    self._changed.notify_all()
                    return
                job = self._jobs.popleft()
                self._changed.notify_all()  # a place in the queue is free
            try:
                job()
            except BaseException:  # a job reports its own errors; this is a bug of ours
                logger.exception("tb-attention: a background write failed")


WRITER = SerialWriter()
