"""The deployment files, checked offline (no container engine or cluster runs here): the
Dockerfile builds from files that exist and runs as a non-root user with a health check;
the compose file and the Kubernetes manifests parse, validate against the Kubernetes API
schemas, probe /healthz and /readyz, run non-root on a read-only root, use one image, and
name only settings the package reads; the secret templates hold placeholders that the
service refuses at start."""

from __future__ import annotations

import copy
import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from consentry.config import Settings
from consentry.errors import ConfigurationError
from consentry.evidence import keyring_for

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
PLACEHOLDER = "CHANGE_ME"
SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEYS", "_KEY")


def package_settings() -> set[str]:
    """Every CONSENTRY_* name the package reads (config.py, the exchanges, the SMTP
    sender...)."""
    names: set[str] = set()
    for path in (ROOT / "consentry").rglob("*.py"):
        names |= set(re.findall(r"CONSENTRY_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return names


# -- the Dockerfile -------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last rule wins)."""
    ignored = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = Path(path).parts
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_the_image_is_multi_stage_slim_non_root_and_checks_its_health():
    steps = instructions((ROOT / "Dockerfile").read_text())
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    bases = [a.split()[0] for kind, a in steps if kind == "FROM"]
    assert len(bases) >= 2, "a build stage and a run stage"
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    run_stage = steps[max(i for i, (kind, _) in enumerate(steps) if kind == "FROM"):]
    users = [a for kind, a in run_stage if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    (check,) = [a for kind, a in run_stage if kind == "HEALTHCHECK"]
    assert "/healthz" in check
    text = " ".join(a for _, a in steps).lower()
    assert "chromium" not in text and "playwright" not in text  # no browser at run time
    assert "requirements.lock" in text


def test_every_file_the_image_copies_exists_and_is_in_the_build_context():
    for kind, arguments in instructions((ROOT / "Dockerfile").read_text()):
        if kind != "COPY" or "--from=" in arguments:
            continue
        *sources, _destination = shlex.split(arguments)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    assert dockerignored(".env") and dockerignored("tests/conftest.py")


def test_no_secret_is_baked_into_the_image():
    for kind, arguments in instructions((ROOT / "Dockerfile").read_text()):
        if kind in ("ENV", "ARG"):
            for word in SECRET_WORDS:
                assert word not in arguments.upper(), arguments


# -- compose ------------------------------------------------------------------------------


def test_the_compose_file_runs_the_fleet_with_health_checks_and_secrets_from_env():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "clickhouse", "migrate", "api", "worker"} <= set(services)
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("postgres", "clickhouse", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    images = {services[n]["image"] for n in ("migrate", "api", "worker")}
    assert len(images) == 1
    known = package_settings()
    for name in ("migrate", "api", "worker"):
        env = services[name]["environment"]
        assert set(env) <= known, set(env) - known
        for key, value in env.items():
            if any(word in key for word in SECRET_WORDS) or key == "CONSENTRY_DATABASE_URL":
                # Interpolated from .env, and required: never a literal in the file.
                assert "${" in value, key


def test_the_env_example_holds_placeholders_the_service_refuses(tmp_path):
    example = dict(line.split("=", 1) for line in
                   (ROOT / ".env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    consentry = {k for k in example if k.startswith("CONSENTRY_")}
    assert consentry <= package_settings(), consentry - package_settings()
    for key, value in example.items():
        if any(word in key for word in SECRET_WORDS):
            assert value in (PLACEHOLDER, ""), key
    with pytest.raises(ConfigurationError):
        Settings(data_dir=tmp_path, secret_key=example["CONSENTRY_SECRET_KEY"])
    with pytest.raises(ConfigurationError):
        keyring_for(Settings(data_dir=tmp_path, secret_key="x" * 40,
                             evidence_keys=example["CONSENTRY_EVIDENCE_KEYS"]))


# -- Kubernetes -----------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    return {name: d["spec"]["template"]["spec"]
            for kind in ("Deployment", "Job") for name, d in by_kind(kind).items()}


def test_the_manifests_are_valid_kubernetes_objects():
    validator = pytest.importorskip("kubernetes_validate")
    checked = 0
    for doc in manifests():
        if doc["kind"] == "Kustomization":
            continue
        validator.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 8
    # The validator is strict: a misspelt field is caught.
    api = copy.deepcopy(by_kind("Deployment")["consentry-api"])
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(validator.ValidationError):
        validator.validate(api, KUBERNETES_VERSION, strict=True)


def test_the_api_is_probed_scaled_and_protected_from_disruption():
    (api,) = pod_specs()["consentry-api"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    deployment = by_kind("Deployment")["consentry-api"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (service,) = by_kind("Service").values()
    assert service["spec"]["selector"].items() <= labels.items()
    (hpa,) = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "consentry-api"
    budgets = by_kind("PodDisruptionBudget")
    assert budgets["consentry-api"]["spec"]["selector"]["matchLabels"].items() \
        <= labels.items()
    worker = by_kind("Deployment")["consentry-worker"]
    assert budgets["consentry-worker"]["spec"]["selector"]["matchLabels"].items() \
        <= worker["spec"]["template"]["metadata"]["labels"].items()
    (runner,) = pod_specs()["consentry-worker"]["containers"]
    assert runner["args"] == ["worker"] and runner["readinessProbe"]["exec"]["command"]


def test_every_pod_runs_non_root_on_a_read_only_root_with_limits_and_one_image():
    images = set()
    for name, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        mounts = set()
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            images.add(container["image"])
            mounts |= {m["mountPath"] for m in container["volumeMounts"]}
        # What the service writes: its data directory and scratch space.
        assert {"/var/lib/consentry", "/tmp"} <= mounts, name
    assert len(images) == 1, images


def test_the_migration_job_runs_before_rollout_and_the_template_is_not_applied():
    (job,) = by_kind("Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).exists() for r in kustomization["resources"])
    assert "secret.template.yaml" not in kustomization["resources"]
    assert "migrate-job.yaml" not in kustomization["resources"]  # applied, then waited for


def test_the_manifests_name_only_settings_the_package_reads():
    known = package_settings()
    (config,) = by_kind("ConfigMap").values()
    (secret,) = by_kind("Secret").values()
    assert set(config["data"]) <= known, set(config["data"]) - known
    assert set(secret["stringData"]) <= known, set(secret["stringData"]) - known
    for key, value in secret["stringData"].items():
        if any(word in key for word in SECRET_WORDS) or key == "CONSENTRY_DATABASE_URL":
            assert PLACEHOLDER in value, key
    for name, spec in pod_specs().items():
        for container in spec["containers"]:
            refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
            assert refs == {("configMapRef", config["metadata"]["name"]),
                            ("secretRef", secret["metadata"]["name"])}, name
