"""Synthetic handwritten-looking symbols: font glyphs and pen-stroke drawings, distorted.

Used by ``greek_symbols`` to enlarge the few real handwritten E and O of HASY. Every image looks
like HASY's: dark strokes (0) on a light background (255), the symbol filling the square frame.
Two sources:
- font glyphs: each symbol rendered with every installed font that has it (Debian font packages
  under /usr/share/fonts, plus the DejaVu and STIX fonts matplotlib ships, so it works anywhere),
  thinned or thickened to pen-like stroke widths;
- pen drawings: the symbol drawn as jittered strokes (polylines, wobbly ellipses), like online
  handwriting rendered by HASY.
Both then go through an elastic distortion and a small random affine transform.

The committed model used these Debian packages besides matplotlib's fonts: ``apt-get install
fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-noto-core fonts-urw-base35
fonts-gfs-neohellenic fonts-gfs-didot fonts-gfs-artemisia fonts-cmu fonts-humor-sans
fonts-comic-neue fonts-cantarell fonts-inter``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

# Class label -> the characters that draw it (θ is also handwritten like a capital Θ).
CHARACTERS: dict[str, tuple[str, ...]] = {
    "E": ("E",),
    "O": ("O",),
    "Σ": ("\u03a3",),
    "θ": ("\u03b8", "\u0398"),
}
FONT_DIRS = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts")]
# Fonts that map every code point to placeholder boxes, or only hold oversized math pieces.
EXCLUDED_FONT_PREFIXES = ("LastResort", "STIXSiz", "cmex", "cmsy", "cmmi", "D050000L", "Dingbats")
RENDER_SIZE = 128  # draw at 4x, then downsample: smooth, pen-like edges


def matplotlib_font_dir() -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _font_characters(path: Path) -> set[str]:
    """Characters of interest that the font's Unicode cmap covers (empty if unreadable)."""
    from fontTools.ttLib import TTFont

    wanted = {c for chars in CHARACTERS.values() for c in chars}
    try:
        font = TTFont(str(path), fontNumber=0, lazy=True)
        cmap = font.getBestCmap() or {}
    except Exception:  # broken or exotic font files: skip them
        return set()
    return {c for c in wanted if ord(c) in cmap}


def default_font_dirs() -> tuple[Path, ...]:
    """System font folders, then matplotlib's bundled fonts (present wherever matplotlib is)."""
    mpl_dir = matplotlib_font_dir()
    return (*FONT_DIRS, *([mpl_dir] if mpl_dir is not None else []))


@functools.lru_cache(maxsize=8)
def find_fonts(dirs: tuple[Path, ...] | None = None) -> dict[str, list[Path]]:
    """Fonts per class label that can draw at least one of its characters, sorted by path.
    Cached: scanning a few hundred font files takes seconds."""
    paths: dict[str, Path] = {}
    for folder in default_font_dirs() if dirs is None else dirs:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in {".ttf", ".otf"} and not path.name.startswith(
                    EXCLUDED_FONT_PREFIXES
                ):
                    paths.setdefault(path.name, path)  # same file in two places: keep one
    by_label: dict[str, list[Path]] = {label: [] for label in CHARACTERS}
    for path in paths.values():
        covered = _font_characters(path)
        for label, chars in CHARACTERS.items():
            if covered & set(chars):
                by_label[label].append(path)
    return by_label


# ---- Shaping: crop, fit to the frame, distort -------------------------------------------------
def fit_to_frame(ink: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Crop a high-resolution ink mask (1 = ink) to its bounding box and scale it into a
    ``size`` x ``size`` frame, longest side filling the frame (as HASY's symbols do), with a
    little random margin, aspect jitter and offset. Returns float ink in [0, 1]."""
    rows, cols = np.nonzero(ink > 0.5)
    if len(rows) == 0:
        return np.zeros((size, size), np.float32)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = crop.shape
    aspect = math.exp(rng.normal(0.0, 0.12))
    margin = rng.uniform(0.0, 0.12) * size
    scale = (size - 2 * margin) / max(height, width * aspect)
    new_h = max(1, min(size, round(height * scale)))
    new_w = max(1, min(size, round(width * aspect * scale)))
    image = Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS)
    frame = np.zeros((size, size), np.float32)
    top = int(rng.integers(0, size - new_h + 1)) if rng.random() < 0.3 else (size - new_h) // 2
    left = int(rng.integers(0, size - new_w + 1)) if rng.random() < 0.3 else (size - new_w) // 2
    frame[top : top + new_h, left : left + new_w] = np.asarray(image, np.float32) / 255
    return frame


def elastic_distort(ink: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float):
    """Simard-style elastic distortion: smooth random displacement fields (in pixels)."""
    shape = ink.shape
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return ndimage.map_coordinates(ink, [y + dy, x + dx], order=1, mode="constant", cval=0.0)


def random_affine(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small rotation and shear about the centre (slanted, tilted handwriting)."""
    angle = math.radians(rng.normal(0, 6))
    shear = rng.normal(0, 0.12)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = rotation @ np.array([[1.0, 0.0], [shear, 1.0]])
    centre = (np.array(ink.shape) - 1) / 2
    offset = centre - matrix @ centre
    return ndimage.affine_transform(ink, matrix, offset=offset, order=1, cval=0.0)


def to_pixels(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Float ink -> uint8 dark-on-light pixels; mostly binarized like HASY (pixels 0/255)."""
    if rng.random() < 0.8:
        ink = (ink > rng.uniform(0.3, 0.6)).astype(np.float32)
    return (255 - np.clip(ink, 0, 1) * 255).astype(np.uint8)


# ---- Source 1: font glyphs --------------------------------------------------------------------
def render_font_glyph(char: str, font_path: Path, rng: np.random.Generator) -> np.ndarray | None:
    """High-resolution ink mask of one character in one font, stroke width varied; None when the
    font draws nothing for it."""
    font = ImageFont.truetype(str(font_path), size=int(RENDER_SIZE * 0.6))
    canvas = Image.new("L", (RENDER_SIZE * 2, RENDER_SIZE * 2), 0)
    ImageDraw.Draw(canvas).text((RENDER_SIZE // 2, RENDER_SIZE // 3), char, fill=255, font=font)
    before = np.asarray(canvas, np.float32) / 255
    if not _plausible(before):
        return None
    # MaxFilter grows the (bright) ink, MinFilter thins it: pen widths from fine to marker.
    change = int(rng.integers(-2, 2))
    for _ in range(abs(change)):
        canvas = canvas.filter(ImageFilter.MaxFilter(3) if change > 0 else ImageFilter.MinFilter(3))
    ink = np.asarray(canvas, np.float32) / 255
    if change < 0 and (ink > 0.5).sum() < 0.5 * (before > 0.5).sum():
        ink = before  # thinning would erase this (already thin) font's strokes
    return ink


def _plausible(ink: np.ndarray) -> bool:
    """Reject renders that cannot be the symbol: nothing, a sliver, or a filled box (fonts that
    map these code points to placeholders or pictographs)."""
    rows, cols = np.nonzero(ink > 0.5)
    if len(rows) < 20:
        return False
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    fill = len(rows) / (height * width)
    return min(height, width) / max(height, width) > 0.3 and fill < 0.6


# ---- Source 2: pen-stroke drawings ------------------------------------------------------------
def _jitter(points: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    return points + rng.normal(0, amount, points.shape)


def _ellipse(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A hand-drawn loop: wobbly radius, random start, small gap or overshoot."""
    start = rng.uniform(0, 2 * math.pi)
    sweep = 2 * math.pi * rng.uniform(0.92, 1.08)
    t = np.linspace(start, start + sweep, 48)
    wobble = 1 + np.convolve(rng.normal(0, 0.05, len(t) + 8), np.ones(9) / 9, mode="valid")
    tilt = rng.normal(0, 0.15)
    x, y = rx * np.cos(t) * wobble, ry * np.sin(t) * wobble
    return np.stack(
        [
            cx + x * math.cos(tilt) - y * math.sin(tilt),
            cy + x * math.sin(tilt) + y * math.cos(tilt),
        ],
        axis=1,
    )


def pen_strokes(label: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes (arrays of x, y in a unit square, y down) drawing ``label`` by hand."""
    j = 0.035  # jitter of each key point
    if label == "E":
        left, right = rng.uniform(0.1, 0.3), rng.uniform(0.7, 0.95)
        mid_y, mid_right = rng.uniform(0.4, 0.6), right - rng.uniform(0, 0.25)
        if rng.random() < 0.5:  # one stroke: top bar, spine, bottom bar; then the middle bar
            outline = np.array([[right, 0.05], [left, 0.05], [left, 0.95], [right, 0.95]])
            bar = np.array([[left, mid_y], [mid_right, mid_y]])
            return [_jitter(outline, rng, j), _jitter(bar, rng, j)]
        return [
            _jitter(np.array(p), rng, j)
            for p in (
                [[left, 0.05], [left, 0.95]],
                [[left, 0.05], [right, 0.05]],
                [[left, mid_y], [mid_right, mid_y]],
                [[left, 0.95], [right, 0.95]],
            )
        ]
    if label == "O":
        rx = rng.uniform(0.25, 0.45)
        return [_ellipse(rng, 0.5, 0.5, rx, rng.uniform(0.35, 0.48))]
    if label == "Σ":
        left, right = rng.uniform(0.05, 0.25), rng.uniform(0.75, 0.95)
        waist = [rng.uniform(0.4, 0.62), rng.uniform(0.42, 0.58)]
        outline = np.array(
            [
                [right, 0.05 + rng.uniform(0, 0.12)],
                [right, 0.05],
                [left, 0.05],
                waist,
                [left, 0.95],
                [right, 0.95],
                [right, 0.95 - rng.uniform(0, 0.12)],
            ]
        )
        if rng.random() < 0.6:  # no serifs on the tips
            outline = outline[1:-1]
        return [_jitter(outline, rng, j)]
    if label == "θ":
        rx, ry = rng.uniform(0.18, 0.4), rng.uniform(0.38, 0.48)
        bar_y = 0.5 + rng.normal(0, 0.04)
        reach = rx * rng.uniform(0.8, 1.3)
        bar = np.array([[0.5 - reach, bar_y], [0.5 + reach, bar_y + rng.normal(0, 0.03)]])
        return [_ellipse(rng, 0.5, 0.5, rx, ry), _jitter(bar, rng, j / 2)]
    raise ValueError(f"no pen drawing for {label!r}")


def render_pen_glyph(label: str, rng: np.random.Generator) -> np.ndarray:
    """High-resolution ink mask of ``label`` drawn with jittered strokes of random width."""
    canvas = Image.new("L", (RENDER_SIZE, RENDER_SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    width = int(rng.integers(3, 11))
    pad = RENDER_SIZE * 0.1
    for stroke in pen_strokes(label, rng):
        span = RENDER_SIZE - 2 * pad
        xy = [(pad + x * span, pad + y * span) for x, y in stroke]
        draw.line(xy, fill=255, width=width, joint="curve")
    return np.asarray(canvas, np.float32) / 255


# ---- Data set ---------------------------------------------------------------------------------
@dataclass
class RenderedGlyphs:
    """Rendered images (N, size, size, 1) uint8 dark-on-light, labels (N,), and what made them."""

    images: np.ndarray
    labels: np.ndarray
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fonts: list[str] = field(default_factory=list)


def render_glyphs(
    per_class: dict[str, int],
    labels: list[str],
    size: int,
    seed: int,
    font_fraction: float = 0.5,
    fonts: dict[str, list[Path]] | None = None,
) -> RenderedGlyphs:
    """Render ``per_class[label]`` images of each label: ``font_fraction`` from fonts (when any
    font has the symbol), the rest pen drawings, each elastically distorted."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts() if fonts is None else fonts
    images, targets, used = [], [], set()
    counts: dict[str, dict[str, int]] = {}
    for index, label in enumerate(labels):
        n_font = round(per_class.get(label, 0) * font_fraction) if fonts.get(label) else 0
        n_pen = per_class.get(label, 0) - n_font
        counts[label] = {"font": 0, "pen": 0}
        made = rejected = 0
        while made < n_font + n_pen:
            if made < n_font:
                font = fonts[label][int(rng.integers(len(fonts[label])))]
                char = CHARACTERS[label][int(rng.integers(len(CHARACTERS[label])))]
                ink = render_font_glyph(char, font, rng)
                if ink is None:  # implausible render: try another font, or give up on fonts
                    rejected += 1
                    if rejected > 10 * n_font:
                        n_font, n_pen = made, n_font + n_pen - made
                    continue
                used.add(font.name)
                source = "font"
            else:
                ink = render_pen_glyph(label, rng)
                source = "pen"
            frame = fit_to_frame(ink, size, rng)
            frame = elastic_distort(
                frame, rng, alpha=rng.uniform(0.5, 2.0), sigma=rng.uniform(2.5, 4)
            )
            frame = random_affine(frame, rng)
            images.append(to_pixels(frame, rng))
            targets.append(index)
            counts[label][source] += 1
            made += 1
    return RenderedGlyphs(
        images=np.asarray(images, np.uint8).reshape(-1, size, size, 1),
        labels=np.asarray(targets, np.int64),
        counts=counts,
        fonts=sorted(used),
    )
