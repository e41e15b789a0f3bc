"""Model load and unload shared by worker processes (``app.worker_control``): the shared files,
and two repositories that share them as two workers would (in one process, each with its own
worker number), following each other's loads and unloads."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.errors import DeadlineExceededError, ModelNotFoundError, ModelNotReadyError
from app.repository import ModelRepository
from app.worker_control import SharedControl
from tests.paths import make_settings


def test_changes_are_published_with_a_rising_generation(tmp_path):
    writer, reader = SharedControl(tmp_path, pid=1), SharedControl(tmp_path, pid=2)
    assert reader.read().generation == 0 and not reader.changed()
    assert writer.publish(unload="spam") == 1
    assert reader.changed()
    state = reader.read()
    assert (state.generation, state.unloaded, state.load_generation) == (1, {"spam"}, 0)
    assert not reader.changed()  # nothing new since it read
    assert writer.publish(unload="mnist") == 2
    assert writer.publish(load="spam") == 3
    state = reader.read()
    assert (state.generation, state.unloaded, state.load_generation) == (3, {"mnist"}, 3)


def test_concurrent_publishers_lose_no_change(tmp_path):
    """Each writer holds the lock over its read-modify-write: 200 changes from 8 threads (each
    its own open file, as separate processes would) make 200 generations."""

    def publish(i: int) -> int:
        return SharedControl(tmp_path, pid=i).publish(unload=f"model-{i}")

    with ThreadPoolExecutor(8) as pool:
        generations = list(pool.map(publish, range(200)))
    assert sorted(generations) == list(range(1, 201))
    state = SharedControl(tmp_path, pid=0).read()
    assert state.generation == 200 and len(state.unloaded) == 200


def test_only_live_workers_behind_the_generation_are_waited_for(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me, parent = os.getpid(), os.getppid()
    for pid, generation in ((me, 1), (parent, 1), (dead.pid, 0)):
        SharedControl(tmp_path, pid=pid).acknowledge(generation)
    control = SharedControl(tmp_path, pid=me)
    assert control.lagging(1) == []
    assert control.lagging(2) == [parent]  # not itself; the dead one is forgotten
    assert not (tmp_path / f"ack-{dead.pid}").exists()
    SharedControl(tmp_path, pid=parent).forget()
    assert control.lagging(2) == []


# ---- two repositories sharing the files, as two workers -------------------------------------
async def _two_workers(models, control_dir, **settings):
    """Two repositories sharing ``control_dir``, loaded, as two workers would be."""
    settings = make_settings(models_dir=models, log_level="warning", warmup=False, **settings)
    control_dir.mkdir()
    # Distinct, live worker numbers: this process and its parent.
    first = ModelRepository(settings, SharedControl(control_dir, pid=os.getpid()))
    second = ModelRepository(settings, SharedControl(control_dir, pid=os.getppid()))
    await first.load()
    await second.load()
    return first, second


def _serves(repository: ModelRepository) -> bool:
    try:
        return repository.get("tiny_image").ready
    except (ModelNotFoundError, ModelNotReadyError):
        return False


@pytest.fixture
def models(tiny_models_dir, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny_image").symlink_to(tiny_models_dir / "tiny_image")
    return tmp_path / "models"


def test_an_unload_and_a_load_reach_the_other_worker_before_the_answer(models, tmp_path):
    async def scenario():
        first, second = await _two_workers(models, tmp_path / "control", unload_grace_seconds=0)
        follower = asyncio.create_task(second.follow_control())
        try:
            await first.unload_model("tiny_image")
            # Answered: the other worker has applied it already.
            assert not _serves(first) and not _serves(second)
            assert "tiny_image" in second.unloaded
            await first.load_model("tiny_image")
            assert _serves(first) and _serves(second)
            with pytest.raises(ModelNotFoundError):
                await first.unload_model("nope")  # nothing published
            assert first.control.read().generation == 2
        finally:
            follower.cancel()
            for repository in (first, second):
                await repository.close()

    asyncio.run(scenario())


def test_conflicting_loads_and_unloads_all_succeed_and_the_workers_agree(models, tmp_path):
    """Requests that load and unload at once (on both workers) are applied in the order they
    were published: none fails (a load that a later unload undid is not "failed to load"),
    and both workers end in the state of the last one."""

    async def scenario():
        first, second = await _two_workers(models, tmp_path / "control", unload_grace_seconds=0)
        followers = [asyncio.create_task(r.follow_control()) for r in (first, second)]
        try:
            calls = [
                (first if i % 3 else second).unload_model("tiny_image")
                if i % 2
                else (second if i % 3 else first).load_model("tiny_image")
                for i in range(24)
            ]
            await asyncio.gather(*calls)
            last = first.control.read()
            assert last.generation == 24
            await first.load_model("tiny_image")
            assert _serves(first) and _serves(second)
            await second.unload_model("tiny_image")
            assert not _serves(first) and not _serves(second)
        finally:
            for task in followers:
                task.cancel()
            for repository in (first, second):
                await repository.close()

    asyncio.run(scenario())


def test_a_load_that_a_later_unload_undid_is_not_a_failed_load(models, tmp_path, monkeypatch):
    async def scenario():
        first, second = await _two_workers(models, tmp_path / "control", unload_grace_seconds=0)
        publish = first.control.publish

        def publish_then_unload_elsewhere(**change):
            generation = publish(**change)
            if "load" in change:  # another request, to the other worker, right after
                SharedControl(tmp_path / "control", pid=second.control.pid).publish(
                    unload="tiny_image"
                )
            return generation

        monkeypatch.setattr(first.control, "publish", publish_then_unload_elsewhere)
        follower = asyncio.create_task(second.follow_control())
        try:
            await first.load_model("tiny_image")  # no "failed to load": it was undone
            assert not _serves(first) and "tiny_image" in first.unloaded
        finally:
            follower.cancel()
            for repository in (first, second):
                await repository.close()

    asyncio.run(scenario())


def test_a_worker_that_does_not_follow_makes_it_a_504_and_applies_it_later(models, tmp_path):
    async def scenario():
        # The second acknowledges generation 0 as it loads, then does not follow.
        first, second = await _two_workers(
            models, tmp_path / "control", unload_grace_seconds=0, model_control_timeout_s=0.3
        )
        try:
            with pytest.raises(DeadlineExceededError, match=rf"\[{os.getppid()}\]"):
                await first.unload_model("tiny_image")
            assert not _serves(first) and _serves(second)
            await second.follow_control_once()  # it catches up
            assert not _serves(second)
            # A worker that starts now (a replaced one) reads the state before its first load.
            third = ModelRepository(first.settings, SharedControl(tmp_path / "control", pid=3))
            await third.load()
            assert not _serves(third) and "tiny_image" in third.unloaded
            await third.close()
        finally:
            for repository in (first, second):
                await repository.close()

    asyncio.run(scenario())


def test_the_state_file_is_plain_json(tmp_path):
    SharedControl(tmp_path, pid=1).publish(unload="spam")
    assert json.loads((tmp_path / "control.json").read_text()) == {
        "generation": 1,
        "unloaded": ["spam"],
        "load_generation": 0,
    }
