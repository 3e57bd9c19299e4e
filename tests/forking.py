"""Run a check in a child made by ``os.fork`` and fail if it fails or hangs.

Thread pools do not survive ``fork()`` (only the forking thread is copied), so
code that keeps one must notice it is in a child; these tests check that it does.
"""

from __future__ import annotations

import os
import time

import pytest


def check_in_forked_child(check, what: str, timeout: float = 20.0) -> None:
    """Fork; the child runs ``check()`` (True: it worked) and exits through its status,
    never returning into pytest.  Fail if the child fails, or has not ended in
    ``timeout`` seconds (then it is killed): "``what`` hung"."""
    pid = os.fork()
    if pid == 0:
        code = 2  # an exception in check()
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, f"{what}: the child failed"
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"{what} hung")
