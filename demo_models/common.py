"""What every demo shares: its command line and the callbacks it trains with."""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from tb_attention_plugin import AttentionCallback  # noqa: E402


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


def train(model, x, y, args, probe, tokens, update_freq, validation_data=None, **callback_kwargs):
    """Fits with Keras's TensorBoard scalars and the AttentionCallback in one run."""
    callbacks = [
        keras.callbacks.TensorBoard(args.logdir),
        AttentionCallback(args.logdir, probe, tokens=tokens, update_freq=update_freq, **callback_kwargs),
    ]
    history = model.fit(
        x, y, epochs=args.epochs, batch_size=32, validation_data=validation_data,
        callbacks=callbacks, verbose=1 if os.environ.get("DEMO_QUIET") != "1" else 0,
    )
    print("attention written to %s; view it with: tensorboard --logdir %s"
          % (args.logdir, os.path.dirname(os.path.abspath(args.logdir))))
    return history
