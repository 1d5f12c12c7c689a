"""How many messages a second this machine can carry, from a probe's CPU per message and the
cores left over by whatever else runs on the machine at the time."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


def machine_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine so far, wall clock), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.monotonic()


def cores() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Capacity:
    cpu_ms_per_message: float  # the whole stack's (our processes, Kafka, ministack, load and model)
    cores: int
    cores_available: float  # cores minus what other programs used during the probe

    @property
    def rate_per_s(self) -> float:
        return self.cores_available * 1000 / max(self.cpu_ms_per_message, 0.001)

    def as_dict(self) -> dict[str, float]:
        return {"cpu_ms_per_message": round(self.cpu_ms_per_message, 1), "cores": self.cores,
                "cores_available": round(self.cores_available, 2), "rate_per_s": round(self.rate_per_s, 1)}


def others_cores(stack_cpu_s: float, machine_before: tuple[float, float], machine_after: tuple[float, float]) -> float:
    """The cores other programs kept busy over a window: the machine's busy time (`machine_cpu()`
    before and after) less the stack's CPU seconds, over the window's wall time."""
    busy = machine_after[0] - machine_before[0]
    wall = max(machine_after[1] - machine_before[1], 0.001)
    return max(0.0, (busy - stack_cpu_s) / wall)


def capacity(stack_cpu_s: float, messages: int, machine_before: tuple[float, float],
             machine_after: tuple[float, float]) -> Capacity:
    """From a probe: the stack's CPU seconds over `messages`, and the cores other programs kept
    busy meanwhile (the stack gets at least 10 % of the machine)."""
    available = max(cores() - others_cores(stack_cpu_s, machine_before, machine_after), 0.1 * cores())
    return Capacity(stack_cpu_s * 1000 / max(messages, 1), cores(), available)
