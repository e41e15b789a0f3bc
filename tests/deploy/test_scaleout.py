"""The scale-out scenario of ``deploy/scaleout.py`` end to end: two replicas loading from S3
(moto's server) behind haproxy, a rolling restart and a new model version under tritonclient
load: not one failed request. Needs haproxy (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from deploy.scaleout import scenario


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_rolling_restart_and_version_roll_without_a_failed_request(moto_s3):
    s3_url, s3 = moto_s3
    args = type("Args", (), {"concurrency": 8, "warm_s": 2.0})()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(scenario(args, s3, s3_url, Path(tmp), Path(tmp)))
    assert result["failures"] == 0, result
    assert result["requests"] > 500
    assert set(result["new_version_live_at_s"]) == {"b", "c"}  # every live replica rolled
    assert str(result["new_version"]) in result["answers_by_version"]
    assert set(result["replica_share"]) == {"a", "b", "c"}  # all three served a share
    assert all(share > 0 for share in result["replica_share"].values())
