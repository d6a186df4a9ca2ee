"""The writing side: what runs inside the user's training.

callback.py (AttentionCallback: schedule, claims, run choice), capture.py (the
hooks on attention layers), masks.py and tokens.py (what is real and what it
reads), image_grid.py (ViT patch grids), run_dirs.py (which run, which step),
head_watch.py (early warnings), messages.py (how the callback speaks) and
summary.py (the summary op: prepare -> serialize -> write).
"""
