"""Runs the real cohortd binary for the Python client's tests, like
tests/integration/server_process.h: loopback, a temp dir, per-test tokens
whose SHA-256 hashes go into the config, the shipped dataset section."""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    """A loopback port that was free a moment ago (for fixed-port tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """cohortd on 127.0.0.1 (port 0 unless `port` is given) in its own temp
    dir; `dataset_edits` are (from, to) replacements of the shipped
    config's dataset section."""

    TOKENS = {"ingest": "py-ingest-token-0123456789",
              "analyst": "py-analyst-token-0123456789",
              "admin": "py-admin-token-0123456789"}

    def __init__(self, port=0, dataset_edits=()):
        self.binary = os.environ["COHORTD_BINARY"]
        self.source_dir = os.environ["COHORTD_SOURCE_DIR"]
        self.dir = tempfile.mkdtemp(prefix="cohortd-py-")
        self.port = port
        self.proc = None
        self._write_config(dataset_edits)

    def _write_config(self, dataset_edits):
        with open(os.path.join(self.source_dir, "config", "cohortd.yaml")) as f:
            shipped = f.read()
        datasets = shipped[shipped.index("\ndatasets:") + 1:]
        cut = datasets.find("\npublications:")
        if cut >= 0:
            datasets = datasets[:cut + 1]
        for old, new in dataset_edits:
            assert old in datasets, old
            datasets = datasets.replace(old, new)
        lines = [
            "server:",
            f"  listen: 127.0.0.1:{self.port}",
            "  metrics_listen: 127.0.0.1:0",
            "  operator_metrics_listen: 127.0.0.1:0",
            "  data_dir: data",
            "  pseudonymization_key_file: pseudonymization.key",
            "  max_batch_size: 5000",
            "  snapshot_every: 87600h",
            "principals:",
        ]
        for role, token in self.TOKENS.items():
            digest = hashlib.sha256(token.encode()).hexdigest()
            lines += [f"  - name: py-{role}", f"    role: {role}",
                      f"    token_sha256: {digest}"]
        with open(os.path.join(self.dir, "cohortd.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n" + datasets)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        with open(os.path.join(self.dir, "cohortd.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--config",
                 os.path.join(self.dir, "cohortd.yaml"),
                 "--shutdown-grace", "5"],
                stdout=subprocess.PIPE, stderr=log, cwd=self.dir)
        deadline = time.time() + timeout
        seen = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen += line
            m = re.search(rb"listening on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
                return
        self.kill()
        with open(os.path.join(self.dir, "cohortd.log"), "rb") as f:
            raise RuntimeError("cohortd did not start:\n" + f.read().decode())

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc = None
        return code

    def kill(self):
        """SIGKILL and wait: a crash."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def cleanup(self, keep=False):
        self.kill()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
