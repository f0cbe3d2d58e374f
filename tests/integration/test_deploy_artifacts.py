"""The deployment artifacts, validated with what the package registries offer: compose.yaml
against the compose-spec JSON schema (check-jsonschema), deploy/k8s against Kubernetes'
schemas (kubernetes-validate, strict), the Dockerfile with hadolint, and the image's
HEALTHCHECK command run against a real ``agentmesh up``. Each validator is also shown to
reject a broken copy, so a pass means something. Not run here: ``docker build``,
``docker compose up``, ``helm lint`` and a cluster (no Docker, Helm or Kubernetes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from agentmesh.runtime.embedded import free_port
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
MANIFESTS = [p for p in K8S if p.name not in ("kustomization.yaml", "nats-values.yaml")]

pytestmark = pytest.mark.integration


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_compose_file_is_valid_compose_spec_with_the_seed_services(tmp_path: Path) -> None:
    compose = ROOT / "compose.yaml"
    ok = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", compose)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = yaml.safe_load(compose.read_text())
    services = doc["services"]
    assert set(services) == {"nats", "postgres", "controlplane", "agent"}
    assert "--jetstream" in services["nats"]["command"]
    env = services["controlplane"]["environment"]
    assert env["NATS_URL"] == "nats://nats:4222"
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["controlplane"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "agent start" in " ".join(services["agent"]["entrypoint"])
    broken = tmp_path / "compose.yaml"
    doc["services"]["agent"]["deploy"]["replicas"] = {"many": True}
    broken.write_text(yaml.safe_dump(doc))
    bad = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", broken)
    assert bad.returncode != 0


def test_kubernetes_manifests_pass_strict_schema_validation(tmp_path: Path) -> None:
    ok = run(BIN / "kubernetes-validate", "--strict", "-k", "1.30.0", *MANIFESTS)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    kinds = {
        d["kind"] for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d is not None
    }
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"} <= kinds
    listed = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == sorted(p.name for p in MANIFESTS)
    plane = next(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "controlplane.yaml").read_text()))
    container = plane["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert plane["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    broken = tmp_path / "agents.yaml"
    broken.write_text(
        (ROOT / "deploy" / "k8s" / "agents.yaml").read_text().replace("replicas: 2", "replica: 2")
    )
    bad = run(BIN / "kubernetes-validate", "--strict", "-k", "1.30.0", broken)
    assert bad.returncode != 0


def test_dockerfile_lints_clean_is_slim_and_non_root(tmp_path: Path) -> None:
    dockerfile = ROOT / "Dockerfile"
    ok = run(BIN / "hadolint", dockerfile)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = dockerfile.read_text()
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^FROM python:3\.\d+-slim$", final.splitlines()[1], re.M)
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user is not None
    assert user.group(1).split(":")[0] not in ("root", "0")
    assert "/health/ready" in final.split("HEALTHCHECK", 1)[1]
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("USER 10001:10001\n", "USER root\n") + "RUN cd /tmp\n")
    assert run(BIN / "hadolint", broken).returncode != 0


def test_the_image_healthcheck_command_reports_a_running_control_plane(tmp_path: Path) -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    cmd = re.search(r"HEALTHCHECK .*?CMD (\[.*\])", text)
    assert cmd is not None
    argv: list[str] = json.loads(cmd.group(1))
    port = free_port()
    argv = [sys.executable, *(a.replace(":8000/", f":{port}/") for a in argv[1:])]
    assert run(*argv).returncode != 0  # nothing listens yet: unhealthy
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "WARNING"}
    env.pop("NATS_URL", None)
    env.pop("DATABASE_URL", None)
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [BIN / "agentmesh", "up", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
            60,
            "the control plane up",
        )
        out = run(*argv)
        assert out.returncode == 0, shlex.join(argv) + out.stderr
    finally:
        up.terminate()
        up.wait(30)
