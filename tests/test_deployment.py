"""The study's Flower App on Flower's deployment engine: a SuperLink and one SuperNode per site, each site reading its
own CSV, all on 127.0.0.1 (run inside a loopback-only network namespace, as the README's test command does).

Each SuperNode starts a new client process per message (a few seconds each, mostly importing torch), so these
tests run two small experiments of two rounds and have generous timeouts."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leftovers import processes_left_in
from study.cli import parse
from study.pipeline import run_study

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SITES = ("north", "south", "east")
COLUMNS = ("age", "bmi", "systolic", "glucose")
RUN_SETTINGS = {"dataset": "csv", "target": "outcome", "sites": 3, "rounds": 2, "seeds": "0", "models": "lr", "epsilons": "1"}


def _write_cohort(folder: Path) -> None:
    """Three hospitals' files, the same rows pooled with a site column, and public bounds for the DP arm."""
    rng = np.random.default_rng(7)
    frames = []
    for number, site in enumerate(SITES):
        rows = 60 + 30 * number
        x = rng.normal(0, 1, (rows, len(COLUMNS))) + 0.3 * number
        risk = x @ np.array([1.2, 0.8, -0.5, 1.0]) + rng.normal(0, 0.7, rows)
        frame = pd.DataFrame(np.round(50 + 10 * x, 2), columns=list(COLUMNS))
        frame["outcome"] = (risk > np.median(risk)).astype(int)
        frame.to_csv(folder / f"{site}.csv", index=False)
        frames.append(frame.assign(hospital=site))
    pd.concat(frames).to_csv(folder / "pooled.csv", index=False)
    ranges = "\n".join(f"{column} = [0.0, 100.0]" for column in COLUMNS)
    (folder / "bounds.toml").write_text(f"[ranges]\n{ranges}\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _certificates(folder: Path) -> dict[str, Path]:
    """A certificate authority and a SuperLink certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))

    def certificate(subject: str, key, issuer: str, signer, *, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(validity[0]).not_valid_after(validity[1])
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("fedstudy test CA", ca_key, "fedstudy test CA", ca_key, ca=True)
    server = certificate("127.0.0.1", server_key, "fedstudy test CA", ca_key, ca=False)
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return paths


class Deployment:
    """A running SuperLink with its SuperNodes; `flwr` talks to it through its own FLWR_HOME."""

    def __init__(self, folder: Path, port: int, certificates: dict[str, Path] | None) -> None:
        self.folder, self.port, self.certificates = folder, port, certificates
        self.env = {**os.environ, "FLWR_HOME": str(folder / "flwr-home"), "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
        self.processes: list[subprocess.Popen] = []
        home = folder / "flwr-home"
        home.mkdir()
        security = f'root-certificates = "{certificates["ca"]}"' if certificates else "insecure = true"
        (home / "config.toml").write_text(f'[superlink.test]\naddress = "127.0.0.1:{port}"\n{security}\n')

    def security(self, role: str) -> list[str]:
        if self.certificates is None:
            return ["--insecure"]
        if role == "superlink":
            return ["--ssl-ca-certfile", str(self.certificates["ca"]), "--ssl-certfile", str(self.certificates["cert"]),
                    "--ssl-keyfile", str(self.certificates["key"])]
        return ["--root-certificates", str(self.certificates["ca"])]

    def start(self, name: str, command: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("w")
        # Its own process group: stopping it also stops the ServerApp / ClientApp processes it started.
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                               cwd=self.folder, start_new_session=True))

    def flwr(self, *arguments: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flwr"), *arguments], capture_output=True, text=True, env=self.env,
                              cwd=PROJECT, timeout=timeout)

    def run(self, settings: dict[str, object], timeout: float = 420) -> tuple[dict, str]:
        """`flwr run . test` with these run config settings; the run's listing (status) and its streamed log."""
        run_config = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items())
        done = self.flwr("run", ".", "test", "--run-config", run_config, "--stream", timeout=timeout)
        listing = json.loads(self.flwr("ls", "test", "--format", "json", timeout=60).stdout)
        return listing["runs"][-1], done.stdout + done.stderr

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def deployment(folder: Path, site_files: list[str], *, tls: bool = False) -> Iterator[Deployment]:
    port = _free_port()
    running = Deployment(folder, port, _certificates(folder) if tls else None)
    try:
        running.start("superlink", [str(BIN / "flower-superlink"), *running.security("superlink"), "--host",
                                    "127.0.0.1", "--port", str(port), "--disable-runtime-dependency-installation"])
        _wait_for_port(port)
        for number, (site, path) in enumerate(zip(SITES, site_files)):
            node_config = f'partition-id={number} site-name="{site}" data-path="{path}"'
            running.start(f"supernode-{site}", [
                str(BIN / "flower-supernode"), *running.security("supernode"), "--superlink", f"127.0.0.1:{port}",
                "--host", "127.0.0.1", "--port", str(_free_port()), "--node-config", node_config])
        yield running
    finally:
        running.stop()
        leftovers = [p.pid for p in running.processes if p.poll() is None]
        assert not leftovers, f"processes still running: {leftovers}"
        assert not processes_left_in(folder), "a Flower process outlived the test"


def _wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the SuperLink did not listen on 127.0.0.1:{port}")


def _metrics(results_csv: Path) -> pd.DataFrame:
    """The run's numbers without its wall-clock timings."""
    table = pd.read_csv(results_csv)
    table = table[~table["metric"].isin(["round_seconds", "train_seconds"])]
    return table.sort_values(["arm", "epsilon", "round", "site", "metric"]).reset_index(drop=True)


def _run_folder(reports: Path) -> Path:
    folders = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]


def test_deployment_gives_the_simulations_numbers_and_stops_cleanly(tmp_path):
    _write_cohort(tmp_path)
    reports = tmp_path / "deployed"
    started = time.perf_counter()
    with deployment(tmp_path, [str(tmp_path / f"{site}.csv") for site in SITES]) as running:
        run, log = running.run({**RUN_SETTINGS, "arms": "federated federated-dp",
                                "public-schema": str(tmp_path / "bounds.toml"), "output": str(reports)})
    print(f"deployment test: {time.perf_counter() - started:.0f} s wall")
    assert run["status"] == "finished:completed", log
    run_dir = _run_folder(reports)
    report = (run_dir / "index.html").read_text()
    assert "deployment engine" in report and "3 SuperNodes" in report

    config, _ = parse(["--data", str(tmp_path / "pooled.csv"), "--target", "outcome", "--site-column", "hospital",
                       "--arms", "federated", "federated-dp", "--public-schema", str(tmp_path / "bounds.toml"),
                       "--epsilon", "1", "--models", "lr", "--seeds", "0", "--rounds", "2", "--canaries", "0"])
    simulated = run_study(config).table
    simulated = simulated[~simulated["metric"].isin(["round_seconds", "train_seconds"])]
    simulated = simulated.sort_values(["arm", "epsilon", "round", "site", "metric"]).reset_index(drop=True)
    deployed = _metrics(run_dir / "results.csv")
    assert len(deployed) == len(simulated) > 0
    assert list(deployed["metric"]) == list(simulated["metric"]) and list(deployed["site"]) == list(simulated["site"])
    # Same data, seeds, float32 operations and site order: the same numbers, not merely close ones.
    np.testing.assert_array_equal(deployed["value"].to_numpy(), simulated["value"].to_numpy())
    assert {"epsilon", "auc"} <= set(deployed["metric"])


def test_deployment_over_tls(tmp_path):
    _write_cohort(tmp_path)
    reports = tmp_path / "deployed"
    with deployment(tmp_path, [str(tmp_path / f"{site}.csv") for site in SITES], tls=True) as running:
        run, log = running.run({**RUN_SETTINGS, "output": str(reports)})
    assert run["status"] == "finished:completed", log
    table = _metrics(_run_folder(reports) / "results.csv")
    final_auc = table[(table["metric"] == "auc") & (table["site"] == "all") & (table["round"] == 2)]["value"]
    assert len(final_auc) == 1 and final_auc.iloc[0] > 0.7


def test_a_site_with_a_bad_file_fails_the_run_with_its_name(tmp_path):
    _write_cohort(tmp_path)
    (tmp_path / "south.csv").write_text("age,bmi\n1,2\n")  # no outcome column
    files = [str(tmp_path / "north.csv"), str(tmp_path / "south.csv"), str(tmp_path / "missing.csv")]
    with deployment(tmp_path, files) as running:
        run, log = running.run({**RUN_SETTINGS, "output": str(tmp_path / "deployed")}, timeout=240)
    assert run["status"].startswith("finished:failed"), run
    assert "site 'south'" in log and "'outcome' is not in" in log, log
    assert not (tmp_path / "deployed").exists() or not any((tmp_path / "deployed").iterdir())
