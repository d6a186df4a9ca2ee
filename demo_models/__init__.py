"""Demo models for tb-attention (`python -m demo_models.NAME`)."""

import os

# Before TensorFlow is first imported (each demo imports keras at its top):
# hides TensorFlow's C++ start-up lines (absl's InitializeLog notice, CPU
# feature hints), which tell a demo user nothing they can act on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
