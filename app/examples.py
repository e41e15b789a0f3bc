"""Request examples for the API docs: a real handwritten digit, not an all-zero image.

``static/examples/seven.png`` is the first digit of the official MNIST test set (a 7; MNIST by
Y. LeCun, C. Cortes and C. Burges, CC BY-SA 3.0). Swagger UI's "Try it out" sends these.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

SEVEN_PNG_PATH = Path(__file__).parent / "static" / "examples" / "seven.png"
SEVEN_PNG = SEVEN_PNG_PATH.read_bytes()
SEVEN_B64 = base64.b64encode(SEVEN_PNG).decode()
SEVEN_PIXELS: list = np.asarray(Image.open(io.BytesIO(SEVEN_PNG)).convert("L"))[..., None].tolist()
"""28 x 28 x 1 uint8 values, the layout of mnist's ``pixels`` input."""
