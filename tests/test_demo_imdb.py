"""The IMDB demo: its loader in keras's format, and the signal it learns."""

import json

import numpy as np
import pytest

from demo_models import imdb
from tb_attention_plugin import read_attention

# The demos are healthy runs: no early warning may fire on them.
pytestmark = pytest.mark.usefixtures("no_head_warnings")


def test_imdb_loader_reads_keras_format_from_keras_home_and_decodes_words(tmp_path, monkeypatch):
    # Keras stores reviews as word ranks (from 1) and adds start=1, index_from=3.
    word_index = {"the": 1, "movie": 2, "was": 3, "great": 4, "boring": 5}
    train = [[1, 2, 3, 4], [1, 2, 3, 5]]
    test = [[2, 3, 5]]
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    np.savez(datasets / "imdb.npz",
             x_train=np.array(train, dtype=object), y_train=np.array([1, 0]),
             x_test=np.array(test, dtype=object), y_test=np.array([0]))
    (datasets / "imdb_word_index.json").write_text(json.dumps(word_index))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    (x_train, y_train), (x_test, _), loaded_index, source = imdb.load_imdb(num_words=100)
    assert source.startswith("keras cache")
    assert x_train[0] == [1, 4, 5, 6, 7]  # start char, then rank + 3
    words = imdb.id_to_word(loaded_index)
    assert [words[i] for i in x_train[0]] == ["<start>", "the", "movie", "was", "great"]
    assert [words[i] for i in x_test[0]] == ["<start>", "movie", "was", "boring"]
    assert list(y_train) == [1, 0]
    # ids past num_words become the out-of-vocabulary id 2
    (x_small, _), _, _, _ = imdb.load_imdb(num_words=6)
    assert x_small[0] == [1, 4, 5, 2, 2]


def test_generated_corpus_labels_follow_the_sentiment_words():
    reviews, labels = imdb.generated_corpus(200, seed=3)
    for words, label in zip(reviews, labels):
        pos = sum(w in imdb.POSITIVE for w in words)
        neg = sum(w in imdb.NEGATIVE for w in words)
        assert (pos > neg) == bool(label)


def test_imdb_demo_attends_to_sentiment_words(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    monkeypatch.setenv("DEMO_QUIET", "1")
    logdir = tmp_path / "imdb"
    imdb.main(["--logdir", str(logdir), "--preset", "tiny", "--offline", "--epochs", "3"])
    layer = read_attention(str(tmp_path))["imdb"]["attention"]
    assert layer.kind == "self" and layer.num_heads == 4
    assert layer.steps[0] == 0 and len(layer.steps) >= 5
    sentiment = set(imdb.POSITIVE) | set(imdb.NEGATIVE)
    ranked_in_top5 = 0
    for received, tokens in zip(layer.received, layer.key_tokens):
        top5 = [tokens[j] for j in np.argsort(received[-1, -1])[::-1][:5]]  # last step, head mean
        ranked_in_top5 += any(t in sentiment for t in top5)
        assert "<pad>" not in tokens  # padding cropped
    # shorter reviews were padded to 60 ids: their maps are cropped smaller
    assert min(len(t) for t in layer.key_tokens) < 60
    assert ranked_in_top5 >= 6, ranked_in_top5  # most of the 8 probe reviews
    # Keras's scalars are written next to the attention
    assert (logdir / "train").is_dir()
