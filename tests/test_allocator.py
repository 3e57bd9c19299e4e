"""minidl.allocator: after ``import minidl``, a big array freed and allocated again
reuses its memory (no page faults); with MINIDL_KEEP_MEMORY=0 nothing changes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings exist only in glibc",
)

# Page faults of 5 more rounds of "allocate a 64 MB array, write it, free it".
PROBE = """
import resource
import numpy as np
import minidl

def fill():
    a = np.empty(16 * 2**20, dtype=np.float32)  # 64 MB
    a.fill(1.0)

fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    fill()
print(minidl.KEEPS_FREED_MEMORY, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(keep: str):
    env = {**os.environ, "MINIDL_KEEP_MEMORY": keep}
    command = [sys.executable, "-c", PROBE]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept == "True", int(faults)


def test_freed_memory_is_reused_without_page_faults():
    kept, faults = _probe("1")
    assert kept
    assert faults < 100, f"{faults} page faults re-allocating a freed 64 MB array"


def test_minidl_keep_memory_0_leaves_malloc_alone():
    kept, faults = _probe("0")
    assert not kept
    # glibc's default maps each 64 MB block afresh: at least its 4 KB or 2 MB pages fault.
    assert faults >= 5 * 32, f"only {faults} page faults: was the default changed anyway?"


# Page faults of the main thread filling a 16 MB array that a worker thread freed.
THREAD_PROBE = """
import resource, threading
import numpy as np
import minidl

def fill():
    a = np.empty(4 * 2**20, dtype=np.float32)  # 16 MB
    a.fill(1.0)

worker = threading.Thread(target=fill)
worker.start()
worker.join()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_memory_a_thread_freed_is_reused_by_another():
    # One heap for all threads (M_ARENA_MAX=1): otherwise the worker's block stays
    # in its own heap, and the main thread faults in 4096 fresh pages.
    env = {**os.environ, "MINIDL_KEEP_MEMORY": "1"}
    out = subprocess.run([sys.executable, "-c", THREAD_PROBE], env=env, capture_output=True, text=True, check=True)
    faults = int(out.stdout)
    assert faults < 100, f"{faults} page faults re-allocating what a worker thread freed"
