"""Sample images for the lessons: six paintings (style) and photos (content).

>>> from minidl.data import sample
>>> sample("starry_night").shape
(640, 1024, 3)

The paintings are bundled in this folder (see README.md here for their
attribution); ``kodim01`` ... ``kodim20`` are the Kodak photos in ``photos/``
(downscaled; attribution in photos/README.md); ``grace_hopper`` is the photo that
matplotlib ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minidl.image import load_image

DATA_DIR = Path(__file__).resolve().parent

# name -> file in this folder
PAINTINGS = {
    "starry_night": "starry_night.jpg",  # Vincent van Gogh, 1889
    "the_scream": "the_scream.jpg",  # Edvard Munch, 1893
    "shipwreck": "shipwreck.jpg",  # J. M. W. Turner, 1805
    "leger": "leger_contrast_of_forms.jpg",  # Fernand Léger, Contrast of Forms, 1913
    "mondrian": "mondrian_tableau_2.jpg",  # Piet Mondrian, Tableau No. 2, 1913
    "red_chalk": "red_chalk_woman_in_peasant_dress.jpg",  # old-master red-chalk study
}
PHOTOS_DIR = DATA_DIR / "photos"
PHOTOS = tuple(f"kodim{k:02d}" for k in range(1, 21))
NAMES = (*PAINTINGS, "grace_hopper", *PHOTOS)
NAMES_TEXT = ", ".join((*PAINTINGS, "grace_hopper", "kodim01 ... kodim20"))  # for messages


def sample_path(name: str) -> Path:
    """Return the path of the sample image called ``name`` (see ``NAMES``)."""
    if name in PAINTINGS:
        return DATA_DIR / PAINTINGS[name]
    if name in PHOTOS:
        return PHOTOS_DIR / f"{name}.jpg"
    if name == "grace_hopper":
        from matplotlib import cbook

        # asfileobj=False: return the path rather than an open file object.
        return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    raise ValueError(f"unknown sample image {name!r}; available: {NAMES_TEXT}")


def sample(name: str, max_side: int | None = None) -> np.ndarray:
    """Load the sample image ``name`` as an (H, W, 3) uint8 RGB array.

    With ``max_side``, it is resized so that its longer side has that many pixels.
    """
    return load_image(sample_path(name), max_side=max_side)
