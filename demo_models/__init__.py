"""Demo models for tb-attention (`python -m demo_models.NAME`).

Every demo's first import is `demo_models.quiet_tensorflow`: TensorFlow's
C++ start-up lines, which tell a demo user nothing they can act on, are left
out of its output.
"""
