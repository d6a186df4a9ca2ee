"""What people do today instead: render attention heatmaps with matplotlib and
log them with tf.summary.image (as keras-attention-mechanism's example does),
here for the IMDB demo model, to compare against AttentionCallback in the same
benchmark run."""

import io

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


class ImageAttentionCallback(keras.callbacks.Callback):
    """Every `every` steps: one figure per probe example with a heatmap per
    head, PNG-encoded into tf.summary.image."""

    def __init__(self, log_dir, probe, every=100):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.probe, self.every = probe, every
        self.images = 0

    def _scores(self):
        embedded = self.model.get_layer("embedding")(self.probe)
        mask = self.probe != 0
        _, scores = self.model.get_layer("attention")(
            embedded, embedded, attention_mask=mask[:, :, None] & mask[:, None, :],
            return_attention_scores=True)
        return scores.numpy()

    def _log(self, step):
        scores = self._scores()
        pngs = []
        for example in scores:
            fig, axes = plt.subplots(1, len(example), figsize=(3 * len(example), 3), dpi=60)
            for ax, head in zip(np.atleast_1d(axes), example):
                ax.imshow(head, cmap="viridis")
                ax.axis("off")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            plt.close(fig)
            pngs.append(tf.image.decode_png(buffer.getvalue(), channels=4))
        with self.writer.as_default(), tf.summary.record_if(True):
            tf.summary.image("attention", tf.stack(pngs), step=step, max_outputs=len(pngs))
        self.writer.flush()
        self.images += len(pngs)

    def on_train_begin(self, logs=None):
        self._log(int(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations)
        if step % self.every == 0:
            self._log(step)
