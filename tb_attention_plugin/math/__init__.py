"""Numbers derived from attention maps, pure numpy (float32).

numerics.py (received and given importance, head statistics, rollout) and
head_metrics.py (the per-head metrics of docs/HEAD_METRICS.md).
"""
