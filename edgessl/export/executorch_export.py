"""ExecuTorch (``.pte``): ``torch.export``, lowered to XNNPACK, run by ExecuTorch's own Python runtime.

``to_edge_transform_and_lower`` with the XNNPACK partitioner hands every operator XNNPACK
takes to its delegate (convolutions, linear, pooling, activations); the rest (for
ShuffleNet the channel shuffle's views, a kNN head's top-k) stay on ExecuTorch's portable
CPU kernels, inside the same file. The program has a fixed batch (``--fixed-batch``,
default 1), because its memory is planned ahead of time. Verification loads the written
bytes in ``executorch.runtime`` -- the runtime an app links -- at one thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgessl.export.conversion import quiet
from edgessl.export.torch_formats import Converter, Outputs, Program, Runner


def convert(program: Program, path: Path) -> None:
    import torch

    with quiet():  # its import logs torchao's registration warning
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(program.module, (program.example,))
        lowered = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        path.write_bytes(lowered.to_executorch().buffer)


def load(path: Path) -> Runner:
    """The written program in ExecuTorch's runtime, on one thread (as the latency table is measured)."""
    import torch

    with quiet():  # "Resetting threadpool to 1 threads.", and torchao's warning on import
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(1)  # the only thread control the Python runtime offers
        # the method runs inside its program's memory: the program must outlive it, so the closure
        # keeps both
        program = Runtime.get().load_program(path)
        method = program.load_method("forward")

    def run(batch: np.ndarray, program=program) -> Outputs:
        # outputs live in the program's planned memory, which the next call overwrites: copy them out
        return tuple(np.array(value, copy=True) for value in method.execute([torch.from_numpy(batch)]))

    return run


CONVERTER = Converter("executorch", convert, load)
