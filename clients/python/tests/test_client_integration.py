"""The Python client against a real cohortd (label: integration)."""

import threading
import time
import unittest

import grpc

from cohortd_client import BudgetExhaustedError, Client, CohortdError
from server_process import ServerProcess, free_port

JAN_2026 = 1767225600
OCCUPATIONS = {  # occupation -> (accounts, verified per mille)
    "legal": (400, 250),
    "management": (350, 400),
    "computer_mathematical": (450, 300),
}


def population():
    """Observations of 1,200 accounts with 1-3 sessions each."""
    out = []
    serial = 0
    for occupation, (accounts, per_mille) in OCCUPATIONS.items():
        for a in range(accounts):
            account = f"{occupation}-acct-{a}"
            for s in range(1 + a % 3):
                serial += 1
                out.append({
                    "session_id": f"{account}-s{s}",
                    "account_id": account,
                    "session_start": JAN_2026 + serial * 60,
                    "source": "py_classifier@1",
                    "labels": {
                        "occupation": occupation,
                        "verified_success":
                            "true" if (serial * 7) % 1000 < per_mille
                            else "false",
                        "work_mode": "fix",
                    },
                    "measures": {"actions_per_prompt": 3 + serial % 10},
                })
    return out


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.servers = []

    def tearDown(self):
        failed = any(e for _, e in getattr(self._outcome, "errors", []) if e)
        for s in self.servers:
            s.cleanup(keep=failed)

    def start(self, **kwargs):
        server = ServerProcess(**kwargs)
        self.servers.append(server)
        server.start()
        return server

    def client(self, server, role):
        c = Client(server.address, ServerProcess.TOKENS[role], timeout=30)
        self.addCleanup(c.close)
        return c

    def test_push_stores_good_observations_and_names_the_bad_ones(self):
        server = self.start()
        worker = self.client(server, "ingest")
        obs = population()[:1000]
        obs[7]["labels"]["occupation"] = "astronaut"
        obs[11]["measures"]["actions_per_prompt"] = "many"
        result = worker.push(obs, batch_size=300)
        self.assertEqual(result.accepted, 998)
        self.assertEqual([r.index for r in result.rejected], [7, 11])
        self.assertEqual(result.rejected[0].field, "labels.occupation")
        self.assertIn("legal", result.rejected[0].reason)  # allowed values
        self.assertEqual(result.rejected[1].field,
                         "measures.actions_per_prompt")
        self.assertEqual(result.batches, 4)
        # Idempotent: the same push again stores nothing new.
        again = worker.push(obs, batch_size=300)
        self.assertEqual((again.accepted, again.unchanged), (0, 998))

    def test_aggregate_returns_a_frame_with_intervals_and_caches(self):
        server = self.start()
        self.client(server, "ingest").push(population())
        self.client(server, "admin").seal_snapshot()
        analyst = self.client(server, "analyst")
        metrics = ["sessions", "verified=rate:verified_success=true",
                   "quantiles:actions_per_prompt:0.25,0.5,0.75"]
        df = analyst.aggregate(metrics, group_by=["occupation"],
                               confidence=0.999999)
        self.assertFalse(df.attrs["from_cache"])
        self.assertGreater(df.attrs["cost"]["epsilon"], 0)
        self.assertIsNotNone(df.attrs["data_as_of"])
        self.assertEqual(df.attrs["interval"], "NOISE")
        self.assertEqual(list(df.columns[:4]),
                         ["occupation", "sessions", "sessions_ci_low",
                          "sessions_ci_high"])
        self.assertIn("verified", df.columns)
        self.assertIn("quantiles_actions_per_prompt_q0.5_ci_high", df.columns)
        truth = {}
        for o in population():
            truth[o["labels"]["occupation"]] = truth.get(
                o["labels"]["occupation"], 0) + 1
        self.assertEqual(set(df["occupation"]), set(OCCUPATIONS))
        for _, row in df.iterrows():
            # At confidence 1 - 1e-6 the interval covers the noiseless
            # count (contribution bounding keeps every session here).
            self.assertLessEqual(row["sessions_ci_low"],
                                 truth[row["occupation"]])
            self.assertGreaterEqual(row["sessions_ci_high"],
                                    truth[row["occupation"]])
            self.assertLessEqual(row["verified_ci_low"], row["verified"])
            self.assertLessEqual(row["verified"], row["verified_ci_high"])
        again = analyst.aggregate(metrics, group_by=["occupation"],
                                  confidence=0.999999)
        self.assertTrue(again.attrs["from_cache"])
        self.assertEqual(again.attrs["cost"]["epsilon"], 0)
        self.assertTrue(again.equals(df))

    def test_describe_and_budget(self):
        server = self.start()
        analyst = self.client(server, "analyst")
        description = analyst.describe()
        names = [d["name"] for d in description["dimensions"]]
        self.assertIn("work_mode", names)
        self.assertGreaterEqual(description["privacy"]["k"], 1)
        before = analyst.budget()
        self.assertEqual(before["spent"]["epsilon"], 0)
        analyst.aggregate("sessions", group_by=["work_mode"], epsilon=0.5)
        after = analyst.budget()
        self.assertGreater(after["spent"]["epsilon"], 0)
        self.assertLess(after["remaining"]["epsilon"],
                        before["remaining"]["epsilon"])

    def test_errors_carry_status_and_message(self):
        server = self.start()
        analyst = self.client(server, "analyst")
        with self.assertRaises(CohortdError) as e:
            analyst.aggregate("sessions", group_by=["planet"])
        self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("planet", e.exception.message)
        with self.assertRaises(CohortdError) as e:
            analyst.push(population()[:3])
        self.assertEqual(e.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(e.exception.partial.accepted, 0)
        stranger = Client(server.address, "not-a-token")
        self.addCleanup(stranger.close)
        with self.assertRaises(CohortdError) as e:
            stranger.budget()
        self.assertEqual(e.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        with self.assertRaises(ValueError):
            analyst.aggregate("median:prompts")  # caught before sending

    def test_exhausted_budget_raises_budget_exhausted(self):
        server = self.start(dataset_edits=[(
            "per_principal: {epsilon: 20, delta: 4.0e-8}",
            "per_principal: {epsilon: 2.5, delta: 4.0e-8}")])
        analyst = self.client(server, "analyst")
        with self.assertRaises(BudgetExhaustedError) as e:
            # Distinct questions (no cache hit) until the budget refuses;
            # 2.5 affords at most a few queries at epsilon 2.
            for dim in ["work_mode", "expertise", "client", "outcome",
                        "occupation", "abandoned"]:
                analyst.aggregate("sessions", group_by=[dim], epsilon=2.0)
        self.assertEqual(e.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("remaining", e.exception.message)

    def test_push_waits_for_a_server_that_is_not_up_yet(self):
        port = free_port()
        server = ServerProcess(port=port)
        self.servers.append(server)
        worker = Client(server.address, ServerProcess.TOKENS["ingest"])
        self.addCleanup(worker.close)
        starter = threading.Timer(1.0, server.start)
        starter.start()
        result = worker.push(population()[:500], batch_size=100,
                             max_retries=10, backoff=0.2)
        starter.join()
        self.assertEqual(result.accepted, 500)
        self.assertGreaterEqual(result.retries, 1)

    def test_push_across_kill_nine_loses_nothing(self):
        port = free_port()
        server = ServerProcess(port=port)
        self.servers.append(server)
        server.start()
        obs = population()
        worker = Client(server.address, ServerProcess.TOKENS["ingest"])
        self.addCleanup(worker.close)
        outcome = {}
        midway = threading.Event()

        def observations():
            for i, o in enumerate(obs):
                if i == len(obs) // 4:
                    midway.set()
                    time.sleep(0.2)  # batches in flight when the kill comes
                yield o

        def push():
            outcome["result"] = worker.push(observations(), batch_size=20,
                                            max_retries=20, backoff=0.1)

        pusher = threading.Thread(target=push)
        pusher.start()
        self.assertTrue(midway.wait(timeout=60))
        server.kill()
        server.start()
        pusher.join(timeout=120)
        result = outcome["result"]
        # Three quarters of the input was not even read at the kill, so the
        # stream broke and the unacknowledged batches were resent.
        self.assertGreaterEqual(result.retries, 1)
        self.assertEqual(result.accepted + result.unchanged, len(obs))
        self.assertFalse(result.rejected)
        # Every observation is stored: pushing all again changes nothing.
        again = worker.push(obs, batch_size=500)
        self.assertEqual((again.accepted, again.unchanged), (0, len(obs)))


if __name__ == "__main__":
    unittest.main()
