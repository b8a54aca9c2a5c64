"""One worker's share of a study spread over N workers (``edgessl study PRESET --shard I/N``)."""

from __future__ import annotations

from dataclasses import dataclass

from edgessl.errors import ConfigError
from edgessl.study.config import Unit


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` of ``count`` (from 1, as SLURM array ids ``--array=1-N``); its share of the grid."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(
                f"--shard {self.index}/{self.count}: expected I/N with 1 <= I <= N, e.g. --shard 1/4"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise ConfigError(f"--shard expects I/N (worker I of N, from 1), got '{text}'")
        return cls(int(index), int(count))

    def share(self, units: list[Unit]) -> list[Unit]:
        """Units ``index, index + count, ...`` (1-based): disjoint shares covering every unit."""
        return units[self.index - 1 :: self.count]


EVERY_UNIT = Shard()  # one worker with the whole grid: a study run without --shard
