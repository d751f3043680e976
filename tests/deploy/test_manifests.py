"""Every deployment recipe in deploy/ parses, and its exact worker command passes ``--dry-run``.

Each test takes the command line a manifest holds (Kubernetes args, the
image's ENTRYPOINT and CMD, the systemd ExecStart, the Slurm script run with
stand-ins for srun and scontrol), runs it as ``python -m wool worker ...
--dry-run``, and checks the resolved configuration, so a renamed flag or a
grace period longer than the platform waits fails here rather than in a
cluster. Nothing here starts a container, a pod or a service.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBE = DEPLOY / "kubernetes"


def dry_run(args: list[str]) -> dict[str, Any]:
    """``python -m wool worker ARGS --dry-run``: the resolved configuration, or a clear failure."""
    assert args[:2] == ["wool", "worker"], args
    proc = subprocess.run(
        [sys.executable, "-m", "wool", *args[1:], "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{shlex.join(args)}\n{proc.stderr}"
    return json.loads(proc.stdout)


def secure(config: dict[str, Any], *, drain_below: float) -> None:
    """A deployed worker listens on every interface with mutual TLS and a secret file."""
    assert config["listen"] == "0.0.0.0:7700"
    assert config["insecure"] is False and config["warnings"] == []
    assert config["tls"] and config["tls"]["mutual"] is True
    assert config["secret"] and "file" in config["secret"]
    assert 0 < config["drain_grace"] < drain_below, "the platform must wait longer than the drain"


def documents() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.setdefault(doc["kind"], []).append(doc)
    return found


def test_every_kubernetes_manifest_parses_into_the_objects_the_guide_names() -> None:
    kinds = documents()
    assert sorted(kinds) == ["Deployment", "Secret", "Service"]
    assert {s["metadata"]["name"] for s in kinds["Secret"]} == {"wool-tls", "wool-mesh-secret"}


def test_the_deployment_command_passes_dry_run_and_joins_the_headless_service() -> None:
    kinds = documents()
    (deployment,) = kinds["Deployment"]
    (service,) = kinds["Service"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {"POD_IP": "10.244.1.7"}  # what Kubernetes substitutes for $(POD_IP)
    args = [*container["command"], *container["args"]]
    for name, value in env.items():
        args = [a.replace(f"$({name})", value) for a in args]
    config = dry_run(args)
    secure(config, drain_below=pod["terminationGracePeriodSeconds"])
    assert config["advertise"] == "10.244.1.7:7700"

    assert service["spec"]["clusterIP"] == "None", "the join name must resolve to every pod"
    name = service["metadata"]["name"]
    assert config["join"] == [f"dns:{name}.default.svc.cluster.local:7700"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()

    probe = container["readinessProbe"]["tcpSocket"]["port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[probe] == 7700

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
    data = {s["metadata"]["name"]: set(s["stringData"]) for s in kinds["Secret"]}
    files = [config["secret"]["file"], *(config["tls"][k] for k in ("ca", "cert", "key"))]
    for file in files:
        volume = next(v for v, m in mounts.items() if file.startswith(m + "/"))
        assert Path(file).name in data[secrets[volume]], f"{file} is not in {secrets[volume]}"


def test_the_image_entrypoint_and_cmd_pass_dry_run() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    entry = json.loads(next(ln for ln in lines if ln.startswith("ENTRYPOINT ")).split(" ", 1)[1])
    cmd = json.loads(next(ln for ln in lines if ln.startswith("CMD ")).split(" ", 1)[1])
    assert "STOPSIGNAL SIGTERM" in lines
    config = dry_run([*entry, *cmd])
    secure(config, drain_below=30)  # the Deployment's terminationGracePeriodSeconds


def test_the_systemd_unit_passes_dry_run_and_waits_out_the_drain() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "wool-worker.service").read_text())
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM"
    seed = service["Environment"].split("=", 1)[1]
    line = service["ExecStart"].replace("%H", "node-a").replace("${SEED}", seed)
    args = shlex.split(line)
    assert args[0] == "/usr/local/bin/wool"
    config = dry_run(["wool", *args[1:]])
    secure(config, drain_below=float(service["TimeoutStopSec"]))
    assert config["advertise"] == "node-a:7700" and config["join"] == [seed]


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_slurm_script_runs_a_worker_command_that_passes_dry_run(tmp_path: Path) -> None:
    """The script runs as written; srun, scontrol and wool are stand-ins that record the call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "scontrol", 'printf "node-a\\nnode-b\\nnode-c\\n"\n')
    _stub(bin_dir, "srun", 'while [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    _stub(bin_dir, "wool", f'exec {shlex.quote(sys.executable)} -m wool "$@" --dry-run\n')
    script = DEPLOY / "slurm" / "wool-workers.sbatch"
    text = script.read_text()
    signal = next(ln for ln in text.splitlines() if ln.startswith("#SBATCH --signal=TERM@"))
    proc = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "SLURM_JOB_NODELIST": "node-[a-c]",
            "HOME": str(tmp_path),
        },
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    secure(config, drain_below=float(signal.rsplit("@", 1)[1]))
    assert config["join"] == ["node-a:7700"]
    assert config["tls"]["ca"] == f"{tmp_path}/wool-certs/ca.pem"
    assert config["advertise"].endswith(":7700") and "$" not in config["advertise"]


@pytest.mark.parametrize(
    "path", sorted(p.name for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md")
)
def test_the_guide_names_every_file_in_deploy(path: str) -> None:
    assert path in (DEPLOY / "README.md").read_text(), f"deploy/README.md does not name {path}"
