"""The scale-out scenario of ``deploy/scaleout.py`` end to end: two replicas loading from S3
(moto's server) behind haproxy, a rolling restart and a new model version under tritonclient
load: not one failed request. Needs haproxy (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_rolling_restart_and_version_roll_without_a_failed_request():
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    spec = importlib.util.spec_from_file_location("scaleout", REPO_ROOT / "deploy/scaleout.py")
    scaleout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaleout)

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3_url = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket="models")
        args = type("Args", (), {"concurrency": 8, "warm_s": 2.0})()
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(scaleout.scenario(args, s3, s3_url, Path(tmp), Path(tmp)))
    finally:
        server.stop()
    assert result["failures"] == 0, result
    assert result["requests"] > 500
    assert set(result["new_version_live_at_s"]) == {"b", "c"}  # every live replica rolled
    assert str(result["new_version"]) in result["answers_by_version"]
    assert set(result["replica_share"]) == {"a", "b", "c"}  # all three served a share
    assert all(share > 0 for share in result["replica_share"].values())
