"""Device placement: the GPU when TensorFlow sees one (memory growth on), else the CPU."""

from __future__ import annotations

import tensorflow as tf

from app.runtime import select_device


def test_gpu_is_used_with_memory_growth_when_visible(monkeypatch):
    fake_gpu = object()
    growth = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [fake_gpu])
    monkeypatch.setattr(
        tf.config.experimental, "set_memory_growth", lambda gpu, on: growth.append((gpu, on))
    )
    assert select_device("auto") == "/GPU:0"
    assert growth == [(fake_gpu, True)]
    assert select_device("cpu") == "/CPU:0"


def test_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    assert select_device("auto") == "/CPU:0"
    assert select_device("gpu") == "/CPU:0"  # asked for, none there: warn and serve anyway
