"""Pictures of what a representation learned: saliency maps, kNN retrieval grids, confusion matrices.

``from edgessl.explain import explain`` is the entry point (:func:`edgessl.explain.report.explain`).
"""

from edgessl.explain.report import explain

__all__ = ["explain"]
