"""Let BLAS's idle threads sleep soon after a product, so that minidl's threads get the cores.

OpenBLAS (NumPy's BLAS) runs a matrix product on one thread per core.  When the
product is done, its helper threads do not sleep at once: they spin, checking
for the next product, for 2^28 clock cycles (about 0.1 s).  A convolution calls
BLAS every few milliseconds, so they never sleep, and each keeps a core busy
while NumPy copies the next im2col columns.  minidl splits those copies between
threads (``backends/threads.py``), and a spinning BLAS thread takes the core
that minidl's second thread needs: measured (2 cores, Gatys loss at 256 px, in
one process) splitting the copies gains 1-3% with the default wait and
10-15% with a wait of 2^14 cycles (about 6 microseconds).

The wait is read from the environment variable ``OPENBLAS_THREAD_TIMEOUT`` (an
exponent, 4 to 30) when BLAS is loaded, i.e. when NumPy is first imported.
``import minidl`` sets it to ``WAIT_EXPONENT`` when NumPy is not loaded yet and
the variable is not set; so the ``minidl`` command always has it, and so does
a script that imports minidl before NumPy.  In any other case, export it
yourself: ``OPENBLAS_THREAD_TIMEOUT=14 python lessons/12_gatys_style_transfer.py``.
"""

from __future__ import annotations

import os
import sys

#: The spin before an idle OpenBLAS thread sleeps: 2^WAIT_EXPONENT clock cycles.
WAIT_EXPONENT = 14


def shorten_blas_spin() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` (see the module docstring) unless NumPy is
    loaded or it is set already.  True when the setting in force is minidl's."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(WAIT_EXPONENT))
    return os.environ.get("OPENBLAS_THREAD_TIMEOUT") == str(WAIT_EXPONENT)


#: Whether ``import minidl`` (which imports this module before anything else) set it.
SHORTENED = shorten_blas_spin()
