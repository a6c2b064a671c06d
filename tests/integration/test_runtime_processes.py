"""Aggregator and learner processes started directly from their environment configuration."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flops_contracts.events import Component, EventType
from flops_messaging.file_publisher import read_events
from tests.fixtures.servers import free_port
from tests.integration.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def make_certificates(directory: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flops-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(minutes=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem",
             "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", **env}
    return subprocess.Popen([sys.executable, "-m", module], env=full,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_tls_channel_trains_and_untrusted_learner_is_refused(tmp_path):
    certs = make_certificates(tmp_path)
    events = tmp_path / "events.jsonl"
    port = free_port()
    common = {"FLOPS_EVENTS_URI": f"file://{events}", "FLOPS_REPO_DIR":
              str(EXAMPLES / "digits_sklearn")}
    aggregator = spawn("aggregator", {
        **common, "FLOPS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "FLOPS_TRAINING": json.dumps({"rounds": 2, "learners": 2, "connect_timeout_s": 60}),
        "FLOPS_TLS_CA_FILE": str(certs["ca"]), "FLOPS_TLS_CERT_FILE": str(certs["cert"]),
        "FLOPS_TLS_KEY_FILE": str(certs["key"])}, tmp_path / "aggregator.log")
    learner_env = {**common, "FLOPS_SERVER_ADDRESS": f"localhost:{port}",
                   "FLOPS_LEARNER_COUNT": "2", "FLOPS_CONNECT_TIMEOUT_S": "60"}
    untrusted = spawn("learner_base", {**learner_env, "FLOPS_INSTANCE": "untrusted",
                                       "FLOPS_CONNECT_TIMEOUT_S": "3"}, tmp_path / "u.log")
    learners = [spawn("learner_base", {**learner_env, "FLOPS_LEARNER_INDEX": str(i),
                                       "FLOPS_TLS_ROOT_CERT": str(certs["ca"])},
                      tmp_path / f"l{i}.log") for i in range(2)]
    try:
        assert aggregator.wait(180) == 0, (tmp_path / "aggregator.log").read_text()[-3000:]
        assert [p.wait(60) for p in learners] == [0, 0]
        assert untrusted.wait(60) != 0
    finally:
        for proc in [aggregator, untrusted, *learners]:
            proc.kill()
    recorded = read_events(events)
    done = [e for e in recorded if e.component is Component.AGGREGATOR
            and e.event is EventType.COMPLETED]
    assert done and done[0].data["total_rounds"] == 2 and done[0].data["metrics"]["accuracy"] > 0.8
    refused = [e for e in recorded if e.instance == "untrusted" and e.event is EventType.FAILED]
    assert refused and refused[0].data["stage"] == "connection"


def test_learner_without_aggregator_fails_within_its_connect_timeout(tmp_path):
    events = tmp_path / "events.jsonl"
    learner = spawn("learner_base", {
        "FLOPS_EVENTS_URI": f"file://{events}", "FLOPS_REPO_DIR": str(EXAMPLES / "digits_sklearn"),
        "FLOPS_SERVER_ADDRESS": f"127.0.0.1:{free_port()}", "FLOPS_CONNECT_TIMEOUT_S": "3"},
        tmp_path / "l.log")
    assert learner.wait(60) == 33  # ExitCode.CONNECTION
    failed = [e for e in read_events(events) if e.event is EventType.FAILED]
    assert "could not be established within 3s" in failed[0].data["reason"]


def test_learner_with_bad_configuration_says_which_variable(tmp_path):
    result = subprocess.run([sys.executable, "-m", "learner_base"], capture_output=True,
                            text=True, env={**os.environ, "FLOPS_LEARNER_COUNT": "zero"},
                            timeout=60)
    assert result.returncode == 2
    assert "FLOPS_REPO_DIR" in result.stderr and "FLOPS_LEARNER_COUNT" in result.stderr


def test_differential_privacy_training_completes(tmp_path):
    from tests.integration.conftest import run_train_local

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"training": {"differential_privacy": {
        "clipping": "fixed", "noise_multiplier": 0.01, "clipping_norm": 100.0}}}))
    code, summary, log = run_train_local(
        [str(EXAMPLES / "digits_sklearn"), "--learners", "2", "--rounds", "2", "--spec",
         str(spec)], tmp_path / "run")
    assert code == 0, log
    assert summary["status"] == "completed" and summary["accuracy"] > 0.5
