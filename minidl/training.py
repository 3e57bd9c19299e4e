"""Training a decoder: reverse VGG16 for reconstruction, or for AdaIN style transfer.

One training step (reconstruction)::

    x      = a batch of random crops (random horizontal flips) of the images
    f      = VGG16(x)[layer]                       frozen encoder, no graph kept
    y      = decoder(f)                            the reconstruction
    loss   = pixel_weight   * mean((y - x)^2) / 255^2
           + feature_weight * mean((VGG16(y)[layer] - f)^2) / mean(f^2)
           + ssim_weight    * (1 - SSIM(luminance(y), luminance(x)))

The pixel term is what PSNR and SSIM measure.  Alone it gives blurry images:
many sharp images have nearly the same features, and their average is the
MSE-optimal answer.  The feature (perceptual) term asks the decoded image to
have the *same features* as the input, which rewards edges and texture; it
needs a second pass through VGG16 (and its backward, to the image only: the
encoder is frozen), which doubles the cost of a step (block3_conv1, 96 px
crops, batch 4, one core: 0.55 CPU-s without it, 1.14 with it).  It is a
*relative* error (divided by the mean square of the target features), so its
weight does not depend on the layer's scale; the default 0.05 makes the two
terms about equal after the first steps (pixel MSE ~0.03 on the 0-1 scale,
relative feature error ~0.6), so PSNR and SSIM, which are pixel measures,
still drive the training.

Defaults, chosen for a CPU: 96 px crops, batch 4, Adam at 1e-3, a decoder
half as wide as VGG16 (four times fewer multiply-adds per convolution than a
full-width one; the encoder passes then dominate a step).

With style images (AdaIN training, Huang & Belongie 2017) the decoder learns
to turn *re-normalised* features into an image::

    t      = adain(VGG16(content)[layer], VGG16(style)[layer])
    y      = decoder(t)
    loss   = mean((VGG16(y)[layer] - t)^2) / mean(t^2)
           + style_weight * sum over block1_conv1..block4_conv1 of the
             squared differences of channel means and stds of y and the style

Everything that decides the next step (decoder weights, Adam's moments, the
random generator that draws crops, the step count) is in the checkpoint, so
``resume`` continues bit for bit: N steps straight give the same weights as
k steps, a checkpoint, a resume and N - k steps.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from minidl import functional as F
from minidl.autograd import no_grad
from minidl.image import load_image
from minidl.metrics import psnr, ssim
from minidl.models.decoder import Decoder, fit_to_layer, load_decoder, reconstruct
from minidl.models.vgg16 import preprocess
from minidl.tensor import Tensor

PHOTOS_DIR = Path(__file__).resolve().parent / "data" / "photos"
#: Four of the twenty Kodak photos never used for training: hats on a wall, a
#: street of half-timbered house fronts, a girl's painted face, a propeller plane
#: (smooth colour, fine architecture, skin, sky).
HELD_OUT = ("kodim03", "kodim08", "kodim15", "kodim20")
HELD_OUT_SIZE = 256
STYLE_LOSS_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CHECKPOINT_KIND = "minidl-decoder-checkpoint"


class TrainingError(ValueError):
    """A problem with the training inputs (images, checkpoint, sizes), said in one line."""


@dataclass
class Settings:
    """Everything that defines a training run; stored in checkpoints and decoder files."""

    layer: str = "block3_conv1"
    arch: str = "resize"
    width: float = 0.5
    images: str = "bundled"  # a folder, or "bundled": the 16 training photos + 3 paintings
    size: int = 96  # side of the random crops (what the shipped decoders used)
    batch: int = 4
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0
    pixel_weight: float = 1.0
    feature_weight: float = 0.05
    ssim_weight: float = 0.0
    style_images: str | None = None  # a folder: AdaIN training
    style_weight: float = 0.0
    init: str | None = None  # a decoder file to start from (AdaIN: the reconstruction one)
    checkpoint_every: int = 50
    eval_every: int = 50
    held_out_size: int = HELD_OUT_SIZE  # longer side of the held-out photos when evaluating


@dataclass
class State:
    """What changes while training; saved in the checkpoint with the weights."""

    step: int = 0
    history: list = field(default_factory=list)  # per step: {"step", "loss", parts...}
    curve: list = field(default_factory=list)  # per evaluation: {"step", "ssim", "psnr", ...}
    seconds: float = 0.0


# ------------------------------------------------------------------ images


def bundled_image_paths() -> list[Path]:
    """The training photos (all Kodak photos but :data:`HELD_OUT`) and the paintings."""
    from minidl.data import DATA_DIR, PAINTINGS

    photos = [p for p in sorted(PHOTOS_DIR.glob("*.jpg")) if p.stem not in HELD_OUT]
    return photos + [DATA_DIR / name for name in PAINTINGS.values()]


def held_out_images(size: int = HELD_OUT_SIZE) -> dict[str, np.ndarray]:
    """The held-out photos, longer side ``size``."""
    return {name: load_image(PHOTOS_DIR / f"{name}.jpg", max_side=size) for name in HELD_OUT}


def load_image_folder(folder, what: str = "--images") -> list[np.ndarray]:
    """Every readable image in ``folder`` (not recursive), or a TrainingError that
    says how many files were there and why each one was skipped."""
    if folder == "bundled":
        return [load_image(p) for p in bundled_image_paths()]
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"{what}: {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images, skipped = [], []
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{path.name} (not an image suffix)")
            continue
        try:
            images.append(load_image(path))
        except ValueError as e:
            skipped.append(f"{path.name} (unreadable: {str(e).split(': ')[-1]})")
    if not images:
        why = "; skipped: " + ", ".join(skipped) if skipped else ""
        raise TrainingError(
            f"{what}: no usable images in {folder}: found {len(files)} file(s){why}"
        )
    return images


def check_crop(images: list[np.ndarray], size: int, what: str = "--images") -> None:
    smallest = min(images, key=lambda im: min(im.shape[:2]))
    if min(smallest.shape[:2]) < size:
        raise TrainingError(
            f"--size {size}: crops are larger than an image in {what} "
            f"({smallest.shape[1]}x{smallest.shape[0]} pixels); use --size <= "
            f"{min(smallest.shape[:2])}"
        )


def random_crops(images, rng: np.random.Generator, size: int, batch: int) -> np.ndarray:
    """``batch`` random ``size`` x ``size`` crops, each flipped left-right half the time."""
    crops = []
    for _ in range(batch):
        image = images[rng.integers(len(images))]
        top = rng.integers(image.shape[0] - size + 1)
        left = rng.integers(image.shape[1] - size + 1)
        crop = image[top : top + size, left : left + size]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return np.stack(crops)


# ------------------------------------------------------------------ losses


def _luminance(x: Tensor) -> Tensor:
    """Luminance on the 0-1 scale of a preprocessed (BGR, mean-subtracted) batch."""
    from minidl.models.vgg16 import MEAN_BGR

    weights = (0.114, 0.587, 0.299)  # B, G, R
    y = sum(w * (x[:, c : c + 1] + float(MEAN_BGR[c])) for c, w in enumerate(weights))
    return y / 255.0


def _mean_std(f: Tensor, eps: float = 1e-5):
    mean = f.mean(axis=(2, 3))
    centred = f - mean.reshape(*mean.shape, 1, 1)
    return mean, ((centred * centred).mean(axis=(2, 3)) + eps).sqrt()


def style_loss(out_feats: dict, style_stats: dict) -> Tensor:
    """Sum over layers of the mean squared differences of channel means and stds,
    each layer divided by the mean square of the style's statistics (scale-free)."""
    total = 0.0
    for layer, (s_mean, s_std) in style_stats.items():
        o_mean, o_std = _mean_std(out_feats[layer])
        scale = float(np.mean(s_mean.numpy() ** 2 + s_std.numpy() ** 2)) + 1e-8
        total = total + (F.mse_loss(o_mean, s_mean) + F.mse_loss(o_std, s_std)) / scale
    return total


# ------------------------------------------------------------------ trainer


class Trainer:
    """Trains one decoder; ``step()`` does one optimisation step.

    Args:
        settings: the run (see :class:`Settings`).
        vgg: a frozen VGG16 on the device to train on.
        images / style_images: lists of uint8 images (default: load from settings).
    """

    def __init__(self, settings: Settings, vgg, images=None, style_images=None):
        from minidl.optim import Adam

        self.settings, self.vgg = settings, vgg
        self.images = images if images is not None else load_image_folder(settings.images)
        check_crop(self.images, settings.size)
        self.style_images = style_images
        if settings.style_images and style_images is None:
            self.style_images = load_image_folder(settings.style_images, "--style-images")
        if self.style_images is not None:
            check_crop(self.style_images, settings.size, "--style-images")
        if settings.init:
            self.decoder = load_decoder(settings.init, device=vgg.device, layer=settings.layer)
            if self.decoder.arch != settings.arch or self.decoder.width != settings.width:
                raise TrainingError(
                    f"--init {settings.init}: a {self.decoder.arch} decoder of width "
                    f"{self.decoder.width}, not {settings.arch} of width {settings.width}"
                )
            self.decoder.train().requires_grad_(True)
        else:
            self.decoder = Decoder(settings.layer, settings.arch, settings.width, settings.seed)
            self.decoder.to(vgg.device)
        self.optimizer = Adam(self.decoder.parameters(), lr=settings.lr)
        self.rng = np.random.default_rng(settings.seed)
        self.state = State()

    @property
    def adain_mode(self) -> bool:
        return self.style_images is not None

    # ---------------------------------------------------------- one step
    def losses(self, batch: np.ndarray, style_batch: np.ndarray | None = None) -> dict:
        """The loss terms for one batch of uint8 crops (and style crops)."""
        s, layer = self.settings, self.settings.layer
        x = preprocess(batch, self.vgg.device)
        if style_batch is not None:
            return self._adain_losses(x, preprocess(style_batch, self.vgg.device))
        with no_grad():
            target = self.vgg.features(x, layer)[layer]
        y = self.decoder(target)
        terms = {"pixel": F.mse_loss(y, x) / 255.0**2}
        if s.feature_weight:
            scale = float(np.mean(target.numpy() ** 2)) + 1e-8
            terms["feature"] = F.mse_loss(self.vgg.features(y, layer)[layer], target) / scale
        if s.ssim_weight:
            terms["ssim"] = 1 - F.ssim(_luminance(y), _luminance(x))
        weights = {"pixel": s.pixel_weight, "feature": s.feature_weight, "ssim": s.ssim_weight}
        terms["loss"] = sum(weights[k] * v for k, v in terms.items())
        return terms

    def _adain_losses(self, x: Tensor, style: Tensor) -> dict:
        s, layer = self.settings, self.settings.layer
        deepest = list(dict.fromkeys((*STYLE_LOSS_LAYERS, layer)))
        with no_grad():
            content_f = self.vgg.features(x, layer)[layer]
            style_f = self.vgg.features(style, deepest)
            target = F.adain(content_f, style_f[layer])
            style_stats = {name: _mean_std(style_f[name]) for name in STYLE_LOSS_LAYERS}
        out_f = self.vgg.features(self.decoder(target), deepest)
        scale = float(np.mean(target.numpy() ** 2)) + 1e-8
        terms = {"content": F.mse_loss(out_f[layer], target) / scale,
                 "style": style_loss(out_f, style_stats)}
        terms["loss"] = terms["content"] + s.style_weight * terms["style"]
        return terms

    def step(self) -> dict:
        """Draw a batch, take one Adam step; returns the loss terms as floats."""
        s = self.settings
        batch = random_crops(self.images, self.rng, s.size, s.batch)
        style_batch = (random_crops(self.style_images, self.rng, s.size, s.batch)
                       if self.adain_mode else None)
        terms = self.losses(batch, style_batch)
        self.optimizer.zero_grad()
        terms["loss"].backward()
        self.optimizer.step()
        self.state.step += 1
        row = {"step": self.state.step, **{k: float(v.item()) for k, v in terms.items()}}
        self.state.history.append(row)
        return row

    # ---------------------------------------------------------- evaluation
    def decode(self, image: np.ndarray) -> np.ndarray:
        """image -> VGG16 -> decoder -> image (cropped to a multiple of 2**pools)."""
        return reconstruct(self.vgg, self.decoder, image)

    def evaluate(self, images: dict[str, np.ndarray]) -> dict:
        """Mean held-out SSIM and PSNR (and per image); appended to the curve."""
        per_image = {}
        for name, image in images.items():
            decoded = self.decode(image)
            original = fit_to_layer(image, self.decoder.pools)
            per_image[name] = {"ssim": ssim(decoded, original), "psnr": psnr(decoded, original)}
        point = {
            "step": self.state.step,
            "ssim": float(np.mean([v["ssim"] for v in per_image.values()])),
            "psnr": float(np.mean([v["psnr"] for v in per_image.values()])),
            "images": per_image,
        }
        self.state.curve = [p for p in self.state.curve if p["step"] != point["step"]] + [point]
        return point

    # ---------------------------------------------------------- checkpoints
    def save_checkpoint(self, path) -> Path:
        """Weights (float32), Adam state, generator state and history, written atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["kind"] = CHECKPOINT_KIND
                f.attrs["settings"] = json.dumps(asdict(self.settings))
                f.attrs["state"] = json.dumps(asdict(self.state))
                f.attrs["rng"] = json.dumps(self.rng.bit_generator.state)
                f.attrs["adam_t"] = self.optimizer.t
                for key, value in self.decoder.state_dict().items():
                    f.create_dataset(f"decoder/{key}", data=value)
                if self.optimizer.m is not None:
                    for i, (m, v) in enumerate(zip(self.optimizer.m, self.optimizer.v)):
                        f.create_dataset(f"adam/m{i}", data=np.asarray(m))
                        f.create_dataset(f"adam/v{i}", data=np.asarray(v))
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def load_checkpoint(self, path) -> None:
        """Continue from ``path``; its layer, arch and width must be this run's."""
        with open_checkpoint(path) as f:
            saved = json.loads(f.attrs["settings"])
            mine = asdict(self.settings)
            for key in ("layer", "arch", "width"):
                if saved[key] != mine[key]:
                    raise TrainingError(
                        f"--resume: checkpoint {path} is for a {saved['layer']} "
                        f"{saved['arch']} decoder of width {saved['width']}, not "
                        f"{mine['layer']} {mine['arch']} of width {mine['width']}"
                    )
            state = {k[len("decoder/"):]: f[k][()] for k in _datasets(f, "decoder")}
            self.decoder.load_state_dict(state, strict=True, source=str(path))
            self.optimizer.t = int(f.attrs["adam_t"])
            if "adam" in f:
                count = len(self.optimizer.params)
                xp = self.optimizer.params[0].xp
                self.optimizer.m = [xp.asarray(f[f"adam/m{i}"][()]) for i in range(count)]
                self.optimizer.v = [xp.asarray(f[f"adam/v{i}"][()]) for i in range(count)]
            self.rng.bit_generator.state = json.loads(f.attrs["rng"])
            self.state = State(**json.loads(f.attrs["state"]))

    def training_record(self) -> dict:
        """How the decoder was trained: stored in the decoder file."""
        last = self.state.curve[-1] if self.state.curve else {}
        return {
            **asdict(self.settings),
            "steps_done": self.state.step,
            "seconds": round(self.state.seconds, 1),
            "held_out": list(HELD_OUT),
            "held_out_ssim": last.get("ssim"),
            "held_out_psnr": last.get("psnr"),
        }


@contextmanager
def open_checkpoint(path):
    """The checkpoint at ``path`` opened for reading; a TrainingError if there is none,
    it is not a decoder checkpoint, or it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("kind") != CHECKPOINT_KIND:
                raise TrainingError(f"--resume: {path} is not a decoder checkpoint")
            yield f
    except OSError as e:
        raise TrainingError(f"--resume: cannot read checkpoint {path}: {e}") from e


def read_checkpoint_settings(path) -> Settings:
    """The settings a checkpoint was trained with (TrainingError if there is none)."""
    with open_checkpoint(path) as f:
        return Settings(**json.loads(f.attrs["settings"]))


def _datasets(f: h5py.File, group: str) -> list[str]:
    names = []
    f[group].visititems(lambda name, obj: names.append(f"{group}/{name}")
                        if isinstance(obj, h5py.Dataset) else None)
    return names


def train(trainer: Trainer, out, checkpoint, held_out: dict | None = None,
          progress: bool = True, on_checkpoint=None) -> Trainer:
    """Run ``trainer`` to ``settings.steps``: evaluate, checkpoint and write the
    decoder file every ``checkpoint_every`` steps and at the end.

    A Ctrl-C stops it; what the last checkpoint holds is kept.
    """
    from tqdm import tqdm

    s = trainer.settings
    held_out = held_out_images(s.held_out_size) if held_out is None else held_out
    bar = tqdm(total=s.steps, initial=trainer.state.step, disable=not progress,
               unit="step", dynamic_ncols=True)
    with bar:
        while trainer.state.step < s.steps:
            start = time.perf_counter()
            row = trainer.step()
            trainer.state.seconds += time.perf_counter() - start
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k != "step"})
            bar.update(1)
            done = trainer.state.step
            if done % s.eval_every == 0 or done == s.steps:
                point = trainer.evaluate(held_out)
                bar.write(f"step {done}: held-out SSIM {point['ssim']:.3f}, "
                          f"PSNR {point['psnr']:.2f} dB")
            if done % s.checkpoint_every == 0 or done == s.steps:
                save_outputs(trainer, out, checkpoint)
                if on_checkpoint:
                    on_checkpoint(trainer)
    return trainer


def save_outputs(trainer: Trainer, out, checkpoint) -> None:
    """The checkpoint, the float16 decoder file and its curve JSON, each atomically."""
    from minidl.runs import atomic_write_json

    trainer.save_checkpoint(checkpoint)
    trainer.decoder.save(out, training=trainer.training_record(), overwrite=True)
    atomic_write_json(curve_path(out), {"held_out": list(HELD_OUT),
                                        "size": trainer.settings.held_out_size,
                                        "curve": trainer.state.curve})


def curve_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.stem + "_curve.json")


def checkpoint_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".ckpt.h5")


# ------------------------------------------------------------------ figures


def write_training_figures(trainer: Trainer, out) -> list[Path]:
    """``OUT_heldout.png`` (held-out photos above their decodings) and
    ``OUT_ssim_vs_steps.png``; returns their paths."""
    out = Path(out)
    title = f"{trainer.settings.layer} {trainer.settings.arch}, {trainer.state.step} steps"
    images = held_out_images(trainer.settings.held_out_size)
    decoded = {name: trainer.decode(image) for name, image in images.items()}
    return [
        heldout_figure(out.with_name(out.stem + "_heldout.png"), images, decoded,
                       trainer.state.curve[-1], title),
        curve_figure(out.with_name(out.stem + "_ssim_vs_steps.png"),
                     {title: trainer.state.curve}),
    ]


def heldout_figure(path, images: dict, decoded: dict, point: dict, title: str) -> Path:
    """Originals in the top row, decodings below, each titled with its SSIM and PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minidl.runs import _temporary_beside

    fig, axes = plt.subplots(2, len(images), figsize=(3 * len(images), 5.2), squeeze=False)
    for k, name in enumerate(images):
        original = images[name][: decoded[name].shape[0], : decoded[name].shape[1]]
        values = point["images"][name]
        axes[0, k].imshow(original)
        axes[0, k].set_title(name, fontsize=9)
        axes[1, k].imshow(decoded[name])
        axes[1, k].set_title(f"SSIM {values['ssim']:.2f}, PSNR {values['psnr']:.1f} dB",
                             fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"held-out photos and their decodings: {title}")
    fig.tight_layout()
    with _temporary_beside(Path(path)) as tmp:
        fig.savefig(tmp, dpi=60)
    plt.close(fig)
    return Path(path)


def curve_figure(path, curves: dict[str, list]) -> Path:
    """Held-out SSIM against training steps, one line per ``{label: curve}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minidl.runs import _temporary_beside

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        ax.plot([p["step"] for p in curve], [p["ssim"] for p in curve], marker=".", label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"mean SSIM on the {len(HELD_OUT)} held-out photos")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with _temporary_beside(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
