"""What every demo shares: its command line and the callbacks it trains with."""

import argparse
import os
import time

import demo_models.quiet_tensorflow  # noqa: F401, I001 (first: before keras imports TensorFlow)
import keras

from tb_attention_plugin import AttentionCallback


def parse_args(description, presets, argv=None, extra=None):
    """--logdir, --epochs, --preset (a key of `presets`), --seed, plus `extra`.

    Returns (args, preset dict) with args.epochs defaulting to the preset's.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--logdir", default=os.path.join("logs", description.split()[0].lower()))
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--preset", choices=sorted(presets), default="default",
                        help="size/speed: 'tiny' trains in seconds (tests), 'default' in minutes")
    parser.add_argument("--seed", type=int, default=0)
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    preset = dict(presets[args.preset])
    if args.epochs is None:
        args.epochs = preset["epochs"]
    keras.utils.set_random_seed(args.seed)
    return args, preset


class EpochLine(keras.callbacks.Callback):
    """One line per epoch: its number, seconds, and the metrics Keras logged.

    Replaces Keras's progress bar, whose first-step estimate includes tracing
    the graph (hours, for a run of seconds) and which floods a terminal that is
    not a TTY (`make`, CI logs) with one redraw per batch.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join("%s %.3f" % (name, float(value)) for name, value in sorted((logs or {}).items()))
        print("epoch %d/%d (%.0f s): %s" % (epoch + 1, self.params["epochs"],
                                            time.perf_counter() - self.epoch_start, metrics), flush=True)


def train(model, x, y, args, probe, tokens, update_freq, validation_data=None, batch_size=32,
          callbacks=(), **callback_kwargs):
    """Fits with Keras's TensorBoard scalars and the AttentionCallback in one run.

    Prints one line per epoch and one when done, unless DEMO_QUIET=1.
    """
    quiet = os.environ.get("DEMO_QUIET") == "1"
    callbacks = [
        keras.callbacks.TensorBoard(args.logdir),
        AttentionCallback(args.logdir, probe, tokens=tokens, update_freq=update_freq, **callback_kwargs),
        *callbacks,
    ]
    if not quiet:
        callbacks.append(EpochLine())
    start = time.perf_counter()
    history = model.fit(
        x, y, epochs=args.epochs, batch_size=batch_size, validation_data=validation_data,
        callbacks=callbacks, verbose=0,
    )
    if not quiet:
        print("Trained in %.0f s; attention written to %s. To look at it: tensorboard --logdir %s, "
              "then open the Attention tab." % (time.perf_counter() - start, args.logdir,
                                                os.path.dirname(os.path.abspath(args.logdir))), flush=True)
    return history
