"""Finding the VGG16 weight file, and downloading it with a checked hash.

:func:`find_weights` looks in ``MINIDL_WEIGHTS``, the project's ``weights/`` folder
and the user cache; :func:`fetch` downloads Keras' official file there with a
progress bar, checks its MD5, and renames it into place only when it is whole.
Neither reads the weights themselves: that is :mod:`minidl.weights.reader`.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from minidl.paths import user_cache_dir
from minidl.weights.formats import WeightsError, temporary_name
from minidl.weights.reader import read_weights


class DownloadError(RuntimeError):
    """Downloading a weight file failed (offline, HTTP error, cut off, wrong hash)."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a named set of weights comes from and what it is called on disk."""

    filename: str
    url: str
    md5: str
    pattern: str  # other file names accepted by find_weights, e.g. "vgg16*.h5"


SOURCES = {
    "vgg16": WeightsSource(
        filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        url="https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        md5="6d6bbae143d832006294945121d1f1fc",
        pattern="vgg16*.h5",
    ),
}

# The repository's weights/ folder: the parent of the minidl package, plus "weights".
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # this file is <root>/minidl/weights/
PROJECT_WEIGHTS_DIR = PROJECT_ROOT / "weights"


def cache_dir() -> Path:
    """The per-user cache folder, where weights are looked for and fetched to."""
    return user_cache_dir()


def default_weights_dir() -> Path:
    """Where ``fetch`` saves by default: the project's weights/ folder in a source
    checkout (next to pyproject.toml), else the user cache folder."""
    if (PROJECT_WEIGHTS_DIR.parent / "pyproject.toml").exists():
        return PROJECT_WEIGHTS_DIR
    return cache_dir()


def _source(name: str) -> WeightsSource:
    if name not in SOURCES:
        raise ValueError(f"unknown weights {name!r}; available: {', '.join(SOURCES)}")
    return SOURCES[name]


def find_weights(name: str = "vgg16") -> Path:
    """Return the path of a weight file, looking in this order:

    1. the environment variable ``MINIDL_WEIGHTS`` (a file, or a folder to search);
    2. the project's ``weights/`` folder;
    3. the user cache folder (``$XDG_CACHE_HOME/minidl`` or ``~/.cache/minidl``).

    In each folder the official file name is preferred, then any ``vgg16*.h5``.
    Raises FileNotFoundError listing every place looked at.
    """
    source = _source(name)
    looked = []
    env = os.environ.get("MINIDL_WEIGHTS")
    if env:
        env_path = Path(env).expanduser()
        if env_path.is_file():
            return env_path
        if not env_path.is_dir():
            # An explicit setting that points nowhere is a mistake: say so, don't fall back.
            raise FileNotFoundError(f"MINIDL_WEIGHTS={env} but no such file or folder exists")
        folders = [env_path, PROJECT_WEIGHTS_DIR, cache_dir()]
    else:
        looked.append("MINIDL_WEIGHTS (not set)")
        folders = [PROJECT_WEIGHTS_DIR, cache_dir()]
    for folder in folders:
        candidates = [folder / source.filename, *sorted(folder.glob(source.pattern))]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked.append(f"{folder}/{{{source.filename}, {source.pattern}}}")
    raise FileNotFoundError(
        f"no {name} weights found; looked in:\n  "
        + "\n  ".join(looked)
        + f"\nRun `minidl weights fetch {name}` or set MINIDL_WEIGHTS=/path/to/file.h5"
    )


def fetch(
    name: str = "vgg16",
    directory: str | os.PathLike | None = None,
    url: str | None = None,
    md5: str | None = None,
) -> Path:
    """Download a weight file, check its MD5 hash, and return its path.

    Args:
        name: which weights (only ``"vgg16"``: Keras' VGG16 "notop" file).
        directory: where to save; default :func:`default_weights_dir`.
        url, md5: override the official address and hash (tests use a local server).

    The download goes to a temporary file in the same folder, which is renamed
    only after the hash matched; on any failure it is deleted and a
    DownloadError says how to put the file in place by hand.  An existing
    file is never overwritten: if it reads as a weight file it is returned,
    otherwise (say, an interrupted copy by hand) the error asks to delete it.
    """
    source = _source(name)
    url = url or source.url
    md5 = md5 or source.md5
    directory = Path(directory) if directory is not None else default_weights_dir()
    target = directory / source.filename
    if target.exists():
        try:
            read_weights(target)
        except (WeightsError, OSError) as error:
            raise DownloadError(
                f"{target} already exists but is not a usable weight file ({error}); "
                "delete it and run again"
            ) from None
        print(f"{target} already exists; not downloading again")
        return target
    directory.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        with open(tmp, "wb") as out:
            digest = _download(url, out)
        if digest != md5:
            raise DownloadError(f"MD5 mismatch: expected {md5}, got {digest}")
        os.replace(tmp, target)
    # URLError (offline, HTTP 404, ...), timeouts and dropped connections are OSErrors.
    except (DownloadError, HTTPException, OSError) as e:
        raise DownloadError(
            f"could not download {name} weights from {url}: {e}\n"
            f"To install them by hand, download\n  {url}\nand save it as\n  {target}\n"
            f"or set MINIDL_WEIGHTS=/path/to/the/file.h5"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"saved {target}")
    return target


def _download(url: str, out, chunk_size: int = 1 << 16) -> str:
    """Copy ``url`` into the open file ``out`` with a progress bar; return the MD5 hex digest.

    Raises DownloadError if the server closes the connection before sending
    the number of bytes it announced in Content-Length.
    """
    from tqdm import tqdm  # imported here: only downloads need it

    md5 = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name) as bar:
            while chunk := response.read(chunk_size):
                out.write(chunk)
                md5.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise DownloadError(f"connection closed after {received} of {total} bytes")
    return md5.hexdigest()
