"""Connected components of the duplicate graph (union-find), in memory proportional to the
number of documents that have at least one duplicate pair: never the whole corpus.

Near-duplication is not transitive, but removal must be consistent: every document linked by a
chain of verified pairs lands in one cluster, and one document per cluster survives.
"""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1 with union by size and path halving."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, node: int) -> int:
        """Root of `node`'s set."""
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, left: int, right: int) -> None:
        """Merge the sets of `left` and `right`."""
        left, right = self.find(left), self.find(right)
        if left == right:
            return
        if self.size[left] < self.size[right]:
            left, right = right, left
        self.parent[right] = left
        self.size[left] += self.size[right]


def connected_components(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (sorted unique ids of any int type) and each one's component label (0..k-1)."""
    nodes, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    sets = UnionFind(len(nodes))
    half = len(left)
    for a, b in zip(inverse[:half].tolist(), inverse[half:].tolist(), strict=True):
        sets.union(a, b)
    roots = np.fromiter((sets.find(i) for i in range(len(nodes))), dtype=np.int64, count=len(nodes))
    _, labels = np.unique(roots, return_inverse=True)
    return nodes, labels
