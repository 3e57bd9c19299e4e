"""Weight files: read them, write them, find them, download them.

A *state_dict* in minidl is a plain ``dict`` that maps a name to a NumPy array::

    {"block1_conv1.weight": array of shape (64, 3, 3, 3),   # (C_out, C_in, kh, kw)
     "block1_conv1.bias":   array of shape (64,),
     ...}

One module per job:

- :mod:`~minidl.weights.formats`: the layouts (Keras 2 legacy ``.h5``, Keras 3
  ``.weights.h5``, minidl's own ``.h5``), described from metadata only; the writer
  of minidl's layout;
- :mod:`~minidl.weights.reader`: open a file (or the ``model.weights.h5`` inside a
  ``.keras`` archive), check every declared shape and dtype, then read the values;
- :mod:`~minidl.weights.download`: find the VGG16 file, or download it with a
  checked hash.

The ``minidl weights`` command is :mod:`minidl.commands.weights`.  Every problem
with a file raises :class:`WeightsError` naming the file, and the layer or key
when there is one.
"""

from minidl.weights.download import (
    PROJECT_ROOT,
    SOURCES,
    DownloadError,
    WeightsSource,
    cache_dir,
    default_weights_dir,
    fetch,
    find_weights,
)
from minidl.weights.formats import (
    FORMAT_VERSION,
    LAYOUT_DESCRIPTIONS,
    MINIDL_FORMAT,
    WeightsError,
    save_state_dict,
)
from minidl.weights.reader import (
    ArrayInfo,
    WeightsFile,
    check_state_dict,
    inspect_weights,
    load_weights,
    read_weights,
)

__all__ = [
    "FORMAT_VERSION",
    "LAYOUT_DESCRIPTIONS",
    "MINIDL_FORMAT",
    "PROJECT_ROOT",
    "SOURCES",
    "ArrayInfo",
    "DownloadError",
    "WeightsError",
    "WeightsFile",
    "WeightsSource",
    "cache_dir",
    "check_state_dict",
    "default_weights_dir",
    "fetch",
    "find_weights",
    "inspect_weights",
    "load_weights",
    "read_weights",
    "save_state_dict",
]
