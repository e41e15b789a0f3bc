"""The Helm chart, checked offline: ``helm lint``, ``helm template`` with the default, GPU/S3 and
KServe values, every rendered Kubernetes object validated strictly against the Kubernetes 1.34
schemas (kubernetes-validate), the InferenceService against KServe's CRD schema, and the
properties the deployment relies on (rolling update, probes, drain, security)."""

from __future__ import annotations

import gzip
import json
import subprocess

import jsonschema
import pytest
import yaml

from app import config
from deploy.helm.helm_binary import helm_binary
from tests.paths import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "tf-model-serving"
SCHEMAS = REPO_ROOT / "deploy" / "helm" / "schemas"
KSERVE_SCHEMA = SCHEMAS / "kserve-inferenceservice-v1beta1.schema.json.gz"


@pytest.fixture(scope="module")
def helm() -> str:
    return str(helm_binary())


def render(helm: str, *args: str) -> list[dict]:
    out = subprocess.run(
        [helm, "template", "tfms", str(CHART), *args], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def test_helm_lint(helm):
    lint = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        [
            "--set",
            "gpu.enabled=true",
            "--set",
            "models.source=s3",
            "--set",
            "models.uri=s3://b/m",
            "--set",
            "autoscaling.queueDepth.enabled=true",
            "--set",
            "resources.limits.cpu=4500m",
            "--set",
            "nodeSelector.accelerator=nvidia",
        ],
        [
            "--set",
            "models.source=volume",
            "--set",
            "models.volume.persistentVolumeClaim.claimName=models",
            "--set",
            "autoscaling.enabled=false",
        ],
    ],
    ids=["default", "gpu-s3-queue-depth", "volume"],
)
def test_rendered_objects_validate_against_kubernetes_1_34(helm, values):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    objects = render(helm, *values)
    expected = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
    assert expected <= set(by_kind(objects))
    for obj in objects:
        kubernetes_validate.validate(obj, "1.34", strict=True)


def test_the_deployment_rolls_drains_and_probes_readiness(helm):
    objects = by_kind(render(helm, "--set", "resources.limits.cpu=4"))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    strategy = objects["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(
        env["SERVING_GRACEFUL_TIMEOUT_SECONDS"]
    )
    assert env["SERVING_WORKERS"] == "2"
    assert env["SERVING_INTRA_OP_THREADS"] == "3"  # 4 CPUs: one left to the event loop
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"


# Measured with `python -m bench.workers` (docs/scaling.md): one worker saturated uses about 1.2
# CPUs (its event loop is the bound); each worker holds about 1.1 GB with every committed model.
ONE_WORKER_CPUS = 1.2
ONE_WORKER_GIB = 1.1


def test_a_saturated_default_pod_reaches_the_cpu_target_and_has_memory_per_worker(helm):
    """With fewer workers than CPUs a saturated pod would stay under the HPA's CPU target (one
    worker: 60 % of 2 CPUs against 70 %) and never scale out."""
    objects = by_kind(render(helm))
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    workers = int({e["name"]: e.get("value") for e in container["env"]}["SERVING_WORKERS"])
    requests = container["resources"]["requests"]
    cpus = float(requests["cpu"])
    target = objects["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["resource"]["target"]
    saturated_percent = min(workers * ONE_WORKER_CPUS, cpus) / cpus * 100
    assert saturated_percent > target["averageUtilization"] + 10
    assert requests["memory"].endswith("Gi")
    assert float(requests["memory"].removesuffix("Gi")) >= workers * ONE_WORKER_GIB


@pytest.mark.parametrize(("cpu", "workers"), [("2", 1), ("4", 2), ("2500m", 2), ("16", 8)])
def test_workers_and_tensorflow_threads_follow_the_values(helm, monkeypatch, cpu, workers):
    """``serving.workers`` reaches the server; TensorFlow's threads come from the CPU limit (a
    pod's CPU set is the node's) by the server's own default rule."""
    objects = by_kind(
        render(helm, "--set", f"resources.limits.cpu={cpu}", "--set", f"serving.workers={workers}")
    )
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SERVING_WORKERS"] == str(workers)
    whole_cpus = int(cpu[:-1]) // 1000 if cpu.endswith("m") else int(cpu)
    monkeypatch.setattr(config, "available_cores", lambda: whole_cpus)
    assert env["SERVING_INTRA_OP_THREADS"] == str(config.Settings(_env_file=None).intra_op_threads)


def test_kserve_values_render_a_valid_inference_service(helm):
    objects = render(helm, "-f", str(CHART / "values-kserve.yaml"))
    kinds = by_kind(objects)
    assert "Deployment" not in kinds and "HorizontalPodAutoscaler" not in kinds
    isvc = kinds["InferenceService"]
    schema = json.loads(gzip.decompress(KSERVE_SCHEMA.read_bytes()))
    jsonschema.validate(isvc, schema)
    container = isvc["spec"]["predictor"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROTOCOL"] == "v2" and env["SERVING_PORT"] == "8080"
    assert env["STORAGE_URI"].startswith("s3://") and env["SERVING_MODELS_DIR"] == "/mnt/models"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert "batcher" not in isvc["spec"]["predictor"]  # this server batches itself


def test_a_broken_inference_service_fails_the_schema():
    schema = json.loads(gzip.decompress(KSERVE_SCHEMA.read_bytes()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "spec": {"predictor": {"minReplicas": "two"}},
            },
            schema,
        )
