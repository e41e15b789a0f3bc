"""Export a trained Keras model as a versioned SavedModel with ``metadata.json`` and plots.

Layout (TensorFlow Serving's): ``<out_dir>/<name>/<version>/`` holding ``saved_model.pb``,
``variables/``, ``metadata.json``, ``history.png`` and ``confusion_matrix.png``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import keras

from training.common import manifest
from training.common.plots import plot_confusion_matrix, plot_history, plot_roc
from training.config import TrainConfig


def next_version(model_dir: Path) -> int:
    """One above the highest integer version folder (1 when there is none)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def tensor_spec(tensor) -> dict:
    """Name, dtype and shape (None for any size) of a Keras input or output tensor."""
    name = getattr(tensor, "name", None) or ""
    return {
        "name": name.split(":")[0],
        "dtype": str(tensor.dtype).replace("tf.", ""),
        "shape": [None if d is None else int(d) for d in tensor.shape],
    }


def serving_model(model: keras.Model) -> keras.Model:
    """The model called with ``training=False`` behind fresh inputs of the same names.

    ``model.export`` traces the model with ``training=None``, in which Keras 3's random
    augmentation layers (RandomRotation, RandomZoom, ...) stay active: the served model would
    answer the same image differently each time. Wrapping pins inference mode.
    """
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name.split(":")[0]),
        model.input,
    )
    return keras.Model(inputs, model(inputs, training=False), name=f"{model.name}_serving")


def write_saved_model(model: keras.Model, path: Path, extra_endpoints: dict | None = None) -> None:
    """``model.export(path)`` (signature ``serving_default``: inputs by name, ``output_0``, ...)
    with each weight stored once.

    ``model.export`` checkpoints every weight twice: as the Keras variable it tracks and as the
    TensorFlow variable the serving function uses; the SavedModel is then twice its weights.
    Tracking the TensorFlow variables themselves (``.value``) keeps one copy; reloaded,
    ``.variables`` still lists them in the model's order (see ``load_exported_weights``).
    Layers without weights of their own are tracked as layers: that is how the lookup tables
    of StringLookup or TextVectorization reach the SavedModel.
    """
    archive = keras.export.ExportArchive()
    for layer in _weightless_layers(model):
        archive.track(layer)
    archive.add_endpoint("serve", model.__call__, input_signature=[input_signature(model)])
    # More signatures over the same variables (e.g. training/explain.py's activations, gradcam):
    # name -> a tf.function with its input signature.
    for name, function in (extra_endpoints or {}).items():
        archive.add_endpoint(name, function)
    archive.add_variable_collection("variables", [v.value for v in model.variables])
    archive.write_out(str(path), verbose=False)


def input_signature(model: keras.Model):
    """The model's inputs as ``tf.TensorSpec`` (a dict of them for named inputs), named as the
    Keras inputs: what a serving signature takes."""
    import tensorflow as tf

    return keras.tree.map_structure(
        lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]), model.input
    )


def _weightless_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weightless_layers(layer)
        elif not layer.variables:
            yield layer


def load_exported_weights(model: keras.Model, saved_model_dir: Path) -> keras.Model:
    """Copy the variables of a SavedModel written by ``export_model`` into ``model`` (built by
    the same ``make_model``), e.g. to re-export a trained model without training it again."""
    import tensorflow as tf

    exported = tf.saved_model.load(str(saved_model_dir)).variables
    if len(exported) != len(model.variables):
        raise ValueError(
            f"{saved_model_dir}: {len(exported)} variables, model has "
            f"{len(model.variables)}: not the same architecture"
        )
    for target, source in zip(model.variables, exported, strict=True):
        if tuple(target.shape) != tuple(source.shape):
            raise ValueError(f"variable {target.path}: shape {target.shape} != {source.shape}")
        target.assign(source.numpy())
    return model


def export_model(
    model: keras.Model,
    *,
    name: str,
    cfg: TrainConfig,
    task: str,
    data: dict,
    splits: dict,
    metrics: dict,
    labels: list[str] | None = None,
    metadata: dict | None = None,
    history: dict[str, list[float]] | None = None,
    extra_endpoints: dict | None = None,
) -> Path:
    """Write the SavedModel, the plots and ``metadata.json``; return the version folder.

    The keywords are what every model's metadata must say (docs/CONTRACTS.md): its task and
    labels, the data it learnt from, the split sizes and the held-out metrics. ``metadata``
    carries the module's own fields (architecture, columns, course baseline, ...); this adds
    name, version, input/output specs, the date, the seed and the epochs.
    """
    metadata = {
        "task": task,
        **({"labels": labels} if labels is not None else {}),
        **(metadata or {}),
        "data": data,
        "splits": splits,
        "metrics": metrics,
    }
    version = cfg.version or next_version(cfg.out_dir / name)
    path = cfg.out_dir / name / str(version)
    if manifest.is_recorded(cfg.out_dir, name, version):
        raise manifest.ImmutableVersionError(
            f"{name} version {version} is recorded in {cfg.out_dir / manifest.MANIFEST}: a "
            "committed version never changes; export a new version (leave out --version)"
        )
    if path.exists():  # an unrecorded, half-written export of this run's version
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_saved_model(serving_model(model), path, extra_endpoints=extra_endpoints)

    plots = {}
    if history:
        plots["history"] = plot_history(history, path / "history.png", title=name).name
    metrics = metadata.get("metrics", {})
    if "confusion_matrix" in metrics and metadata.get("labels"):
        plots["confusion_matrix"] = plot_confusion_matrix(
            metrics["confusion_matrix"],
            metadata["labels"],
            path / "confusion_matrix.png",
            title=f"{name}: confusion matrix (test split)",
        ).name
    if "roc_curve" in metrics:
        plots["roc"] = plot_roc(
            metrics["roc_curve"],
            metrics["roc_auc"],
            path / "roc.png",
            title=f"{name}: ROC (test split)",
        ).name

    full = {
        "name": name,
        "version": version,
        **metadata,
        "inputs": metadata.get("inputs") or [tensor_spec(t) for t in model.inputs],
        # model.export names the serving signature's outputs output_0, output_1, ...
        "outputs": metadata.get("outputs")
        or [{**tensor_spec(t), "name": f"output_{i}"} for i, t in enumerate(model.outputs)],
        "plots": plots,
        "training": {
            **metadata.get("training", {}),
            "seed": cfg.seed,
            "epochs_run": len(next(iter(history.values()))) if history else None,
            "limited_to_examples": cfg.limit,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "keras_version": keras.__version__,
        },
    }
    write_metadata(path, full)
    manifest.record(cfg.out_dir, name, version)
    return path


def split_sizes(**splits) -> dict[str, int]:
    """``{"train": len(x_tr), ...}`` for ``train=x_tr, ...``."""
    return {name: len(rows) for name, rows in splits.items()}


def write_metadata(version_dir: Path, metadata: dict) -> None:
    (version_dir / "metadata.json").write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    )


def add_plot(version_dir: Path, key: str, plot: Path) -> None:
    """Record an extra plot (one written after ``export_model``) in metadata.json's ``plots``."""
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata.setdefault("plots", {})[key] = plot.name
    write_metadata(version_dir, metadata)
    manifest.record(version_dir.parent.parent, version_dir.parent.name, version_dir.name)
