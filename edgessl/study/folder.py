"""The study folder's layout: the names of what a study writes, and how a refused new study is cleared.

Layout of a study folder::

    STUDY/study.yaml                           the resolved config of the latest call
    STUDY/runs/<method>-<backbone>-seed<S>/    an ordinary training run folder per unit
        checkpoints/epoch_NNNN.pt ...          one every ``save_every`` epochs
        study_train.yaml                       a launched cell's TrainConfig (``--launcher`` only)
        study_cell.json                        written last: its presence marks the unit finished
    STUDY/table1.md, table1.csv, figure1_by_method.png, figure2_by_backbone.png
    STUDY/study.json                           every unit's per-seed values and the table's statistics
"""

from __future__ import annotations

from pathlib import Path

STUDY_FILE = "study.yaml"
RUNS_DIR = "runs"
TABLE_MD, TABLE_CSV = "table1.md", "table1.csv"
FIGURE_1, FIGURE_2 = "figure1_by_method.png", "figure2_by_backbone.png"
CLAIM_FILE, RENDER_LOCK = ".study-claim", ".render.lock"
LAUNCH_CONFIG = "study_train.yaml"  # a launched cell's TrainConfig, in its run folder


def remove_unused_study(root: Path, created_root: bool) -> None:
    """A new study's folder as it was before it started: ``study.yaml`` and the empty folders go.

    Called only for a study that had no ``study.yaml`` and no cell finished in, when a cell
    refused to start (too little disk, say); anything with content is kept, and ``root``
    itself only goes when this call created it.
    """
    (root / STUDY_FILE).unlink(missing_ok=True)
    folders = sorted((path for path in root.rglob("*") if path.is_dir()), reverse=True)  # deepest first
    for folder in folders:
        if not any(folder.iterdir()):
            folder.rmdir()
    if created_root and not any(root.iterdir()):
        root.rmdir()
