"""Make the course map's thumbnails: one small PNG per lesson from its figures.

    python lessons/thumbs/make.py          # after running the lessons (figures in lessons/out/)

Writes lessons/thumbs/NN.png (280 px wide, 64 colours: a few KB) from the figure
named in FIGURE, or else the lesson's first figure in alphabetical order.
"""

import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out"
FIGURE = {
    "01": "graph.png", "02": "conv_matrix.png", "03": "not_an_inverse.png", "04": "gemm_tiling.png",
    "05": "resize_vs_transposed.png", "06": "worked_8x8.png", "07": "feature_maps.png",
    "08": "projections_block3_conv3.png", "09": "reconstructions.png", "10": "held_out.png",
    "11": "texture_synthesis.png", "12": "stylized.png", "13": "alpha_sweep.png",
    "14": "winograd_time.png",
}
WIDTH = 280


def make(number: str, figure: Path) -> Path:
    image = Image.open(figure).convert("RGB")
    image.thumbnail((WIDTH, WIDTH * 2))
    small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    target = HERE / f"{number}.png"
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".png")
    os.close(fd)
    small.save(tmp, optimize=True)
    os.replace(tmp, target)
    return target


def main() -> int:
    folders = sorted(p for p in OUT.glob("[0-9][0-9]") if p.is_dir()) if OUT.is_dir() else []
    if not folders:
        print(f"no figures in {OUT}: run the lessons first", file=sys.stderr)
        return 2
    for folder in folders:
        figures = sorted(folder.glob("*.png"))
        chosen = folder / FIGURE[folder.name] if folder.name in FIGURE else (figures[0] if figures else None)
        if chosen is None or not chosen.is_file():
            print(f"{folder.name}: no figure, skipped")
            continue
        target = make(folder.name, chosen)
        print(f"{target} <- {chosen.name} ({target.stat().st_size / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
