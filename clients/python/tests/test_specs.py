"""Unit tests of the client's spec parsing, conversions and frames (no
server; label: python)."""

import datetime
import unittest

from cohortd_client import parse_measure_filter, parse_metric, to_frame
from cohortd_client import to_observation
from cohortd_client._stubs import pb
from cohortd_client.errors import CohortdError


class MetricSpecTest(unittest.TestCase):
    def test_kinds(self):
        self.assertEqual(parse_metric("sessions").kind, pb.Metric.SESSIONS)
        m = parse_metric("rate:verified_success=true")
        self.assertEqual(m.kind, pb.Metric.RATE)
        self.assertEqual(m.rate_of.dimension, "verified_success")
        self.assertEqual(list(m.rate_of.any_of), ["true"])
        m = parse_metric("gm=geometric_mean:words_per_prompt")
        self.assertEqual((m.kind, m.measure, m.name),
                         (pb.Metric.GEOMETRIC_MEAN, "words_per_prompt", "gm"))
        m = parse_metric("quantiles:actions_per_prompt")
        self.assertEqual(list(m.quantiles), [0.05, 0.25, 0.5, 0.75, 0.95])
        m = parse_metric("quantiles:prompts:0.1,0.9")
        self.assertEqual(list(m.quantiles), [0.1, 0.9])

    def test_errors_name_the_problem(self):
        for spec, words in [("median:x", "unknown kind"),
                            ("mean", "expected mean:MEASURE"),
                            ("sessions:x", "takes no argument"),
                            ("quantiles:x:1.5", "not in (0, 1)"),
                            ("rate:outcome", "expected DIM=V1,V2"),
                            ("9x=sessions", "bad output name")]:
            with self.assertRaises(ValueError) as e:
                parse_metric(spec)
            self.assertIn(words, str(e.exception), spec)

    def test_measure_filters(self):
        f = parse_measure_filter("lines_added>=1")
        self.assertEqual(f.measure, "lines_added")
        self.assertTrue(f.HasField("at_least"))
        self.assertEqual(f.at_least, 1.0)
        self.assertFalse(f.HasField("above"))
        self.assertEqual(parse_measure_filter("failure_signal > 3").above, 3)
        self.assertEqual(parse_measure_filter("x<2").below, 2)
        self.assertEqual(parse_measure_filter("x<=2").at_most, 2)
        for bad in ["x=3", "x>", ">3", "x>abc", "x>inf"]:
            with self.assertRaises(ValueError):
                parse_measure_filter(bad)


class ObservationTest(unittest.TestCase):
    def test_times(self):
        utc = datetime.timezone.utc
        want = 1767225600
        for value in [want, float(want), "2026-01-01T00:00:00Z",
                      datetime.datetime(2026, 1, 1),
                      datetime.datetime(2026, 1, 1, 1, tzinfo=datetime.timezone(
                          datetime.timedelta(hours=1)))]:
            obs = to_observation({"session_id": "s", "session_start": value})
            self.assertEqual(obs.session_start.seconds, want, value)
        del utc

    def test_bad_fields_are_named(self):
        cases = [({"labels": {"work_mode": 3}}, "labels.work_mode"),
                 ({"measures": {"prompts": "4"}}, "measures.prompts"),
                 ({"measures": {"prompts": True}}, "measures.prompts"),
                 ({"session_id": 5}, "session_id"),
                 ({"session_start": "yesterday"}, "session_start"),
                 ({"label": {}}, "label")]
        for item, field in cases:
            with self.assertRaises(ValueError) as e:
                to_observation(item)
            self.assertTrue(str(e.exception).startswith(field + ":"),
                            str(e.exception))


class FrameTest(unittest.TestCase):
    def test_columns_follow_the_request(self):
        request = pb.AggregateRequest(group_by=["expertise"])
        request.metrics.add(kind=pb.Metric.SESSIONS)
        request.metrics.add(kind=pb.Metric.QUANTILES,
                            measure="prompts").quantiles.extend([0.25, 0.5])
        response = pb.AggregateResponse(release_id="r1", from_cache=True)
        cohort = response.cohorts.add()
        cohort.key["expertise"] = "novice"
        est = cohort.estimates.add(metric="quantiles_prompts")
        est.quantiles.add(q=0.5, value=4, ci_low=3, ci_high=5)
        est.quantiles.add(q=0.25, value=2, ci_low=1, ci_high=3)
        cohort.estimates.add(metric="sessions", value=100, ci_low=90,
                             ci_high=110)
        other = response.cohorts.add()  # its quantiles' gate failed
        other.key["expertise"] = "expert"
        other.estimates.add(metric="sessions", value=50, ci_low=40,
                            ci_high=60)
        df = to_frame(request, response)
        self.assertEqual(list(df.columns), [
            "expertise", "sessions", "sessions_ci_low", "sessions_ci_high",
            "quantiles_prompts_q0.25", "quantiles_prompts_q0.25_ci_low",
            "quantiles_prompts_q0.25_ci_high", "quantiles_prompts_q0.5",
            "quantiles_prompts_q0.5_ci_low", "quantiles_prompts_q0.5_ci_high"])
        self.assertEqual(df.loc[0, "quantiles_prompts_q0.5"], 4)
        self.assertTrue(df["quantiles_prompts_q0.5"].isna()[1])
        self.assertEqual(df.attrs["release_id"], "r1")
        self.assertTrue(df.attrs["from_cache"])


class ErrorTest(unittest.TestCase):
    def test_retry_hint_is_parsed(self):
        import grpc
        e = CohortdError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         "ingest rate limit; retry after 250 ms")
        self.assertEqual(e.retry_after, 0.25)
        self.assertIn("RESOURCE_EXHAUSTED", str(e))


if __name__ == "__main__":
    unittest.main()
