"""Packaging: `pip install .` gives the callback, the summary op, the reader
and the TensorBoard plugin (found through the `tensorboard_plugins` entry
point), with the frontend files from `frontend/` installed inside the package
as `tb_attention_plugin/frontend/`."""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    with open(os.path.join(HERE, "tb_attention_plugin", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split('"')[1]
    raise RuntimeError("no __version__")


setuptools.setup(
    name="tb-attention",
    version=_version(),
    description="Attention maps of Keras models, recorded during training and shown in TensorBoard",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "tb_attention_plugin",
        "tb_attention_plugin.writing",
        "tb_attention_plugin.writing.backends",
        "tb_attention_plugin.format",
        "tb_attention_plugin.math",
        "tb_attention_plugin.serving",
        "tb_attention_plugin.frontend",
        "demo_models",
    ],
    package_dir={"tb_attention_plugin.frontend": "frontend"},
    package_data={
        "tb_attention_plugin.format": ["*.proto"],
        "tb_attention_plugin.serving": ["http_api.md"],
        "tb_attention_plugin.frontend": ["*.js", "*.css", "*.html"],
    },
    # TensorFlow itself is not listed: `tensorflow`, `tensorflow-cpu` and
    # `tensorflow-macos` are different distributions of one package, and
    # naming one would install a second TensorFlow next to another. Install
    # the one you want first, or use an extra: `pip install tb-attention[cpu]`.
    install_requires=[
        "tensorboard>=2.16",
        "keras>=3.9",
        "numpy>=1.26",
        "protobuf>=6.31.1",
        # CRC-32C of the event records the callback writes (C; TensorBoard's
        # pure-Python fallback costs about 0.4 s per MB written)
        "google-crc32c>=1.5",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow>=2.16"],
        # Keras on JAX (KERAS_BACKEND=jax): no TensorFlow needed. jax[cuda12]
        # instead of this for a GPU, as JAX's install guide says.
        "jax": ["jax>=0.4.34"],
        # Keras on PyTorch (KERAS_BACKEND=torch). 2.13.0 is the CPU build make
        # install takes (a newer one from the index is a CUDA build of GBs).
        "torch": ["torch>=2.1"],
        # keras-hub itself is installed by the Makefile with --no-deps (see
        # KERAS_HUB there): its tensorflow-text dependency pulls the full
        # `tensorflow` beside `tensorflow-cpu`. These are the imports it needs
        # to build models from config (no weights, no tokenizer files).
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "playwright>=1.40",
            "regex",
            "tokenizers",
            "sentencepiece",
            "kagglehub",
            # tests/test_wheel.py builds the wheel; tests/test_notebook.py
            # runs the README's notebook lines (%tensorboard, pandas)
            "build",
            "ipython",
            "pandas",
        ],
        "bench": ["matplotlib"],  # only for the image-summary comparison
        "docs": ["Pillow", "playwright>=1.40"],  # docs/make_gif.py
    },
    entry_points={
        "tensorboard_plugins": [
            "attention = tb_attention_plugin.serving.plugin_loader:AttentionPluginLoader",
        ],
    },
)
