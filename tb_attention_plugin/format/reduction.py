"""Reduced maps: what is kept of an attention map too large to store whole,
and the dense map rebuilt from it with a bound on every cell's error
(docs/FORMAT.md, "Reduced maps").

Of one example's maps (heads, q, k), cropped to its real tokens:
  * the `top_k` largest weights of every query row, exact, with their key
    positions (ascending);
  * an overview: the max and the mean of every `block` x `block` square of
    cells (the last row and column of blocks may be smaller).
Every weight left out of a row is at most that row's smallest kept weight
(they are its largest) and at most its block's max, so the rebuilt map
states, per cell, how far the truth can be from what it shows. Kept cells
are exact; a row whose keys are all kept is exact.

A kind of stored data, stated in one place with how it is computed (the
byte layout is encoding.reduced_sections): the writer reduces float32 maps
with `reduce`, the reader and the server rebuild with `rebuild`. Pure numpy,
no I/O; in format/ rather than math/ because the serving side, which imports
no math, rebuilds it.
"""

import dataclasses
import math

import numpy as np

# Weights kept per query row: a row's sink, its previous and next tokens and
# a few content tokens (docs/FORMAT.md says what they hold on real maps).
TOP_K = 8
# The overview has at most this many blocks per side: a 2048-token map is
# 128 x 128 blocks of 16 x 16 cells.
OVERVIEW_SIDE = 128


def block_for(q, k, side=OVERVIEW_SIDE):
    """The side of an overview block for a q x k map: the smallest that
    keeps both axes within `side` blocks."""
    return max(1, math.ceil(max(q, k, 1) / side))


def block_of_step(lengths):
    """The block of a step's overview: `block_for` the longest query and key
    lengths of its examples, `lengths` [(q, k)], so that every example of a
    step shares one `block_size` (its facts hold one)."""
    lengths = list(lengths)
    return block_for(max((q for q, _ in lengths), default=0), max((k for _, k in lengths), default=0))


def blocks(length, block):
    """How many blocks of `block` cover `length` positions."""
    return -(-length // block)


@dataclasses.dataclass
class Reduced:
    """The reduced form of one example's maps (heads, q, k).

    values:     float32 (heads, q, kept): each row's largest weights
    positions:  int64 (heads, q, kept): their key positions, ascending per row
    block_max:  float32 (heads, ceil(q / block), ceil(k / block))
    block_mean: float32, same shape: the mean over the block's cells
    block:      side of a block, in cells
    shape:      (heads, q, k) of the map it reduces
    kept = min(top_k, k).
    """

    values: np.ndarray
    positions: np.ndarray
    block_max: np.ndarray
    block_mean: np.ndarray
    block: int
    shape: tuple

    @property
    def exact(self):
        """Whether every weight is kept (rows of at most top_k keys)."""
        return self.values.shape[-1] == self.shape[2]


def reduce(maps, top_k=TOP_K, block=None):
    """(heads, q, k) weights >= 0 -> Reduced. `block` defaults to
    `block_for(q, k)`. Vectorised: a few partitions per row and reduceat
    passes, no loop over cells."""
    maps = np.asarray(maps, dtype=np.float32)
    heads, q, k = maps.shape
    block = block or block_for(q, k)
    kept = min(top_k, k)
    row_max, row_sum = _along_keys(maps, block, np.maximum), _along_keys(maps, block, np.add)
    positions = _largest(maps, kept, block, row_max)
    values = np.take_along_axis(maps, positions, axis=-1)
    block_max, block_sum = _along_rows(row_max, block, np.maximum), _along_rows(row_sum, block, np.add)
    return Reduced(values, positions, block_max, block_sum / _block_cells(q, k, block), block, (heads, q, k))


def _along_keys(maps, block, ufunc):
    """(heads, q, blocks(k)): `ufunc`.reduce over each row's blocks of keys.
    Along the keys first: contiguous, and it leaves 1/block of the cells for
    the strided pass over the rows (2.8x faster than rows first at 8 heads
    x 2048 tokens)."""
    heads, q, k = maps.shape
    if q == 0 or k == 0:
        return np.zeros((heads, q, blocks(k, block)), np.float32)
    return ufunc.reduceat(maps, np.arange(0, k, block), axis=2)


def _along_rows(per_row, block, ufunc):
    """(heads, blocks(q), blocks(k)) from _along_keys's (heads, q, blocks(k))."""
    heads, q, kb = per_row.shape
    if q == 0 or kb == 0:
        return np.zeros((heads, blocks(q, block), kb), np.float32)
    return ufunc.reduceat(per_row, np.arange(0, q, block), axis=1).astype(np.float32)


def _largest(maps, kept, block, row_max):
    """(heads, q, kept) int64: the key positions of each row's `kept`
    largest weights, ascending. They lie in the row's `kept` blocks of
    largest max (a block left out has a max no larger than the smallest of
    those maxima, so it holds no larger weight: at most an equal one, and
    which of equal weights is kept does not matter), so only those blocks'
    cells are searched: 8 x 16 cells instead of 2048 per row at 2048 tokens,
    7-10x faster than a partition of whole rows on trained-like maps, 2x on
    near-uniform ones (docs/PERFORMANCE.md change 24)."""
    heads, q, k = maps.shape
    if kept == k:
        return np.ascontiguousarray(np.broadcast_to(np.arange(k, dtype=np.int64), (heads, q, k)))
    candidates, weights = np.arange(k, dtype=np.int64)[None, None, :], maps
    key_blocks = row_max.shape[-1]
    if block > 1 and kept < key_blocks:
        top_blocks = np.argpartition(row_max, key_blocks - kept, axis=-1)[..., key_blocks - kept:]
        candidates = (top_blocks[..., None] * block + np.arange(block)).reshape(heads, q, kept * block)
        weights = np.take_along_axis(maps, np.minimum(candidates, k - 1), axis=-1)
        weights[candidates >= k] = -1.0  # past the end of a last block shorter than the others
    pick = np.argpartition(weights, weights.shape[-1] - kept, axis=-1)[..., weights.shape[-1] - kept:]
    positions = np.take_along_axis(np.broadcast_to(candidates, weights.shape), pick, axis=-1)
    positions.sort(axis=-1)
    return positions


def _block_cells(q, k, block):
    """(blocks(q), blocks(k)) cells in each block (edge blocks are smaller)."""
    rows = np.minimum(block, q - np.arange(0, q, block))
    cols = np.minimum(block, k - np.arange(0, k, block))
    return np.outer(rows, cols).astype(np.float32)


def one_head(reduced, head):
    """The Reduced of head `head` alone (views, no copy)."""
    h = slice(head, head + 1)
    return Reduced(reduced.values[h], reduced.positions[h], reduced.block_max[h], reduced.block_mean[h],
                   reduced.block, (1,) + tuple(reduced.shape[1:]))


def row_floor(reduced):
    """(heads, q): the most any weight left out of a row can be, its
    smallest kept weight; 0 where every key is kept."""
    if reduced.exact or reduced.values.shape[-1] == 0:
        return np.zeros(reduced.values.shape[:2], np.float32)
    return reduced.values.min(axis=-1)


def kept_mass(reduced):
    """(heads, q): the share of each row's weight its kept cells hold (of
    rows that sum to 1: 1 - what the overview alone estimates)."""
    return reduced.values.sum(axis=-1, dtype=np.float64)


def rebuild(reduced, cell_error=0.0):
    """The dense map a Reduced stands for, and how far it can be off.

    Kept cells are their stored weights. Every other cell of a block gets
    the block's weight not held by kept cells, spread evenly over them,
    clipped to [lower, upper]: upper = min(its row's floor, its block's
    max, what the block holds beyond its kept cells), lower = that left-over
    once its other left-out cells take the block's max (0 at least). The true weight lies
    in that interval, so a block with one left-out cell is exact.

    Args:
      reduced: a Reduced.
      cell_error: the storage encoding's error on each stored weight
        (encoding.UINT8_MAX_ERROR, or 0 for float32).

    Returns:
      (estimate, bound): float32 (heads, q, k) each; |true - estimate| <=
      bound in every cell (kept cells: cell_error).
    """
    heads, q, k = reduced.shape
    block = reduced.block
    rows, cols = np.arange(q) // block, np.arange(k) // block
    flat_block = rows[None, :, None] * blocks(k, block) + reduced.positions // block  # (h, q, kept)
    per_block = blocks(q, block) * blocks(k, block)
    offsets = (np.arange(heads) * per_block)[:, None, None]
    kept_sum = np.bincount((flat_block + offsets).ravel(), reduced.values.ravel(), heads * per_block)
    kept_count = np.bincount((flat_block + offsets).ravel(), None, heads * per_block)
    cells = _block_cells(q, k, block).ravel()
    left_sum = reduced.block_mean.reshape(heads, per_block) * cells - kept_sum.reshape(heads, per_block)
    left_cells = cells - kept_count.reshape(heads, per_block)
    spread = np.where(left_cells > 0, np.maximum(left_sum, 0) / np.maximum(left_cells, 1), 0)
    # The least a left-out cell can be: what its block leaves over once every
    # other left-out cell takes the block's max (each stored weight, the
    # mean over `cells` included, off by up to cell_error). A block of one
    # left-out cell is then exact.
    # The most: no more than the block leaves over, nor its max, nor its
    # row's smallest kept weight.
    block_max = reduced.block_max.reshape(heads, per_block)
    slack = cell_error * (cells + kept_count.reshape(heads, per_block))
    lower = left_sum - (left_cells - 1) * (block_max + cell_error) - slack
    shape2 = (heads, blocks(q, block), blocks(k, block))
    spread = spread.reshape(shape2).astype(np.float32)
    lower = np.maximum(lower, 0).reshape(shape2).astype(np.float32)[:, rows][:, :, cols]
    left_over = np.maximum(left_sum + slack, 0).reshape(shape2).astype(np.float32)
    upper = np.minimum(row_floor(reduced)[:, :, None], np.minimum(reduced.block_max, left_over)[:, rows][:, :, cols])
    lower = np.minimum(lower, upper + np.float32(cell_error))
    estimate = np.clip(spread[:, rows][:, :, cols], lower, np.maximum(upper, lower))
    bound = np.maximum(estimate - lower, upper + np.float32(cell_error) - estimate)
    np.put_along_axis(estimate, reduced.positions, reduced.values, axis=-1)
    np.put_along_axis(bound, reduced.positions, np.float32(cell_error), axis=-1)
    return estimate, bound
