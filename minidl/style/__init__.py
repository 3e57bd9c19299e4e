"""Style transfer: paint a photo in the style of a painting.

Two methods, one call::

    from minidl.style import stylize
    image, log = stylize("grace_hopper", "starry_night", method="gatys", size=256)

* ``"gatys"`` (:mod:`minidl.style.gatys`): optimise the pixels until VGG16 sees
  the photo's content and the painting's Gram matrices; slow, any style.
* ``"adain"`` (:mod:`minidl.style.adain`): encode, give the content features the
  style's channel means and deviations, decode with a trained decoder; one pass.

Both return ``(uint8 image, log dict)``; the log's keys are those of
:class:`minidl.runs.RunLog`.
"""

from __future__ import annotations

METHODS = ("gatys", "adain")


def stylize(content, styles, method: str = "gatys", **options):
    """Dispatch to ``minidl.style.<method>.stylize(content, styles, **options)``."""
    if method == "gatys":
        from minidl.style import gatys

        return gatys.stylize(content, styles, **options)
    if method == "adain":
        try:
            from minidl.style import adain
        except ImportError as e:
            raise ValueError(
                "method 'adain' is not available: minidl.style.adain is missing from this "
                "installation"
            ) from e
        return adain.stylize(content, styles, **options)
    raise ValueError(f"stylize: method must be one of {', '.join(METHODS)}, got {method!r}")
