"""The docs' examples (clients/python/examples) run against a real cohortd:
a worker pushes labels, an analyst draws a PNG (label: integration)."""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import unittest

from cohortd_client import Client
from server_process import ServerProcess
from test_client_integration import population

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "examples")


class ExamplesTest(unittest.TestCase):
    def test_worker_then_analyst_figure(self):
        server = ServerProcess()
        server.start()
        ok = False
        try:
            work = tempfile.mkdtemp(dir=server.dir)
            tokens = {}
            for role in ("ingest", "analyst"):
                tokens[role] = os.path.join(work, f"{role}.token")
                with open(tokens[role], "w") as f:
                    f.write(ServerProcess.TOKENS[role])
            # Occupations and outcomes come from another worker; the
            # example worker adds work modes to the same sessions.
            with Client(server.address, ServerProcess.TOKENS["ingest"]) as c:
                self.assertTrue(c.push(population()).ok)
            sessions = os.path.join(work, "sessions.jsonl")
            with open(sessions, "w") as f:
                for i, o in enumerate(population()):
                    f.write(json.dumps({
                        "session_id": o["session_id"],
                        "account_id": o["account_id"],
                        "start": datetime.datetime.fromtimestamp(
                            o["session_start"],
                            datetime.timezone.utc).isoformat(),
                        "transcript": "please fix this bug" if i % 2 else
                                      "write a test"}) + "\n")
                f.write("{not json\n")
            env = dict(os.environ)
            worker = subprocess.run(
                [sys.executable, os.path.join(EXAMPLES, "worker_push.py"),
                 "--target", server.address, "--token-file", tokens["ingest"],
                 sessions], env=env, capture_output=True, text=True,
                timeout=120)
            # The malformed last line stops the example's reader: what came
            # before is stored and said so.
            self.assertEqual(worker.returncode, 2, worker.stderr)
            self.assertIn("a line is not JSON", worker.stderr)
            self.assertIn(f"{len(population())} stored, 0 unchanged and 0 "
                          "rejected before it", worker.stderr)
            with Client(server.address, ServerProcess.TOKENS["admin"]) as c:
                c.seal_snapshot()
            png = os.path.join(work, "figure.png")
            analyst = subprocess.run(
                [sys.executable, os.path.join(EXAMPLES, "analyst_figure.py"),
                 "--target", server.address, "--token-file",
                 tokens["analyst"], "--out", png], env=env,
                capture_output=True, text=True, timeout=120)
            self.assertEqual(analyst.returncode, 0, analyst.stderr)
            self.assertIn("3 occupations", analyst.stdout)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertGreater(os.path.getsize(png), 10_000)
            ok = True
        finally:
            server.cleanup(keep=not ok)


if __name__ == "__main__":
    unittest.main()
