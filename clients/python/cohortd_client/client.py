"""A Python client for cohortd's public API (shared/design/API.md).

Two kinds of users:
  * classifier workers push labels and telemetry: `Client.push` batches,
    streams, retries what the server did not acknowledge (pushes are
    idempotent, so a resent batch changes nothing) and returns the
    per-observation rejections;
  * analysts ask DP releases: `Client.aggregate` returns a pandas DataFrame
    with a value and an interval per metric, `describe` and `budget` the
    schema and what remains.

Every failed call raises CohortdError carrying the gRPC status code and the
server's message.
"""

import collections
import datetime
import math
import threading
import time

import grpc
from google.protobuf import json_format

from cohortd_client import specs
from cohortd_client._stubs import pb, pb_grpc
from cohortd_client.errors import BudgetExhaustedError, CohortdError

# Codes after which a push is resent: the server did not (or may not have)
# stored the unacknowledged batches, and storing one twice changes nothing.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

Rejection = collections.namedtuple("Rejection", "index field reason")
Rejection.__doc__ = ("One observation the server (or the client's own "
                     "conversion) refused: its index in the iterable given "
                     "to push(), the field and why.")


class PushResult:
    """What one push() stored: `accepted` new or changed observations,
    `unchanged` ones already stored, `rejected` (list of Rejection, indexes
    into the observations given), `rejected_omitted` rejections the server
    counted but left out of its answer to bound its size."""

    def __init__(self):
        self.accepted = 0
        self.unchanged = 0
        self.rejected = []
        self.rejected_omitted = 0
        self.batches = 0
        self.retries = 0

    @property
    def ok(self):
        """True when nothing was rejected."""
        return not self.rejected and self.rejected_omitted == 0

    def _add(self, batch, response):
        """Counts one acknowledged batch; rejection indexes become indexes
        into the caller's observations."""
        self.accepted += response.accepted
        self.unchanged += response.unchanged
        self.rejected_omitted += response.rejected_omitted
        self.rejected.extend(batch.local_rejections)
        for r in response.rejected:
            index = (batch.index_map[r.index]
                     if 0 <= r.index < len(batch.index_map) else -1)
            self.rejected.append(Rejection(index, r.field, r.reason))
        self.batches += 1

    def __repr__(self):
        return (f"PushResult(accepted={self.accepted}, "
                f"unchanged={self.unchanged}, rejected={len(self.rejected)}, "
                f"rejected_omitted={self.rejected_omitted}, "
                f"batches={self.batches}, retries={self.retries})")


class _Batch:
    """One PushRequest; index_map[i] is the caller's index of its i-th
    observation (observations the client could not convert are not sent and
    are in local_rejections)."""

    __slots__ = ("index_map", "request", "local_rejections")

    def __init__(self, index_map, request, local_rejections):
        self.index_map = index_map
        self.request = request
        self.local_rejections = local_rejections


def _timestamp(value, ts):
    """Sets the Timestamp `ts` from a datetime (naive = UTC), an ISO 8601
    string, epoch seconds, or a Timestamp. Raises ValueError."""
    if isinstance(value, type(ts)):
        ts.CopyFrom(value)
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite number of seconds")
        ts.FromNanoseconds(int(round(value * 1e9)))
        return
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        value = datetime.datetime.fromisoformat(text)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        ts.FromDatetime(value.astimezone(datetime.timezone.utc)
                        .replace(tzinfo=None))
        return
    raise ValueError(f"{type(value).__name__} is not a time")


def to_observation(item):
    """An Observation proto from a dict with the proto's field names
    (session_id, account_id, session_start, source, labels, measures) or an
    Observation. Raises ValueError("FIELD: why") for what cannot be
    converted; what can be is left for the server to validate."""
    if isinstance(item, pb.Observation):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"observation: expected a dict, not "
                         f"{type(item).__name__}")
    known = {"session_id", "account_id", "session_start", "source", "labels",
             "measures"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field; the fields are "
                         + ", ".join(sorted(known)))
    obs = pb.Observation()
    for field in ("session_id", "account_id", "source"):
        value = item.get(field, "")
        if not isinstance(value, str):
            raise ValueError(f"{field}: expected a string, not "
                             f"{type(value).__name__}")
        setattr(obs, field, value)
    if item.get("session_start") is not None:
        try:
            _timestamp(item["session_start"], obs.session_start)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"session_start: {e}") from None
    for name, value in (item.get("labels") or {}).items():
        if not isinstance(value, str):
            raise ValueError(f"labels.{name}: expected a string, not "
                             f"{type(value).__name__}")
        obs.labels[name] = value
    for name, value in (item.get("measures") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"measures.{name}: expected a number, not "
                             f"{type(value).__name__}")
        obs.measures[name] = float(value)
    return obs


class Client:
    """A connection to one cohortd server.

    target: "host:port". token: the bearer token (ingest, analyst or admin
    role). TLS is used when any of root_certificates (PEM of the CA; system
    roots when None and tls=True), certificate_chain and private_key
    (mutual TLS) is given, or tls=True; each may be bytes or a file path.
    timeout: seconds for each unary call.
    """

    def __init__(self, target, token, *, tls=None, root_certificates=None,
                 certificate_chain=None, private_key=None, timeout=60.0,
                 options=None):
        if not target:
            raise ValueError("target must be host:port")
        if not token:
            raise ValueError("token is empty; every call needs a bearer "
                             "token")
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        use_tls = tls if tls is not None else any(
            x is not None
            for x in (root_certificates, certificate_chain, private_key))
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("mutual TLS needs both certificate_chain and "
                             "private_key")
        if use_tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(root_certificates),
                private_key=_read(private_key),
                certificate_chain=_read(certificate_chain))
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._ingest = pb_grpc.IngestStub(self._channel)
        self._query = pb_grpc.QueryStub(self._channel)
        self._admin = pb_grpc.AdminStub(self._channel)

    def close(self):
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ ingest

    def push(self, observations, dataset="sessions", *, batch_size=500,
             max_retries=8, backoff=0.2):
        """Pushes observations (dicts as for to_observation, or Observation
        protos; any iterable, consumed once) in batches of `batch_size` over
        one PushStream. Returns a PushResult once every batch is durable.

        A batch the server did not acknowledge (UNAVAILABLE, a broken
        connection, a rate limit) is resent on a new stream, up to
        `max_retries` times in a row with exponential backoff from `backoff`
        seconds (or the server's retry hint). An observation the client
        cannot convert becomes a Rejection and is not sent; the rest of its
        batch is. Any other error raises CohortdError with `.partial`, the
        PushResult of the batches acknowledged before it.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        source = self._batches(observations, dataset, batch_size)
        result = PushResult()
        # Batches taken from `source` and not yet acknowledged, in the order
        # they were (or will be) sent; responses come in the same order.
        pending = collections.deque()
        unsent = []  # rejections of batches with nothing left to send
        source_failure = []  # what the caller's iterable raised, if anything
        failures = 0
        while True:
            closed = threading.Event()
            lock = threading.Lock()
            # Unacknowledged batches of the last attempt go first; they stay
            # in `pending` until a response acknowledges them.
            resend = list(pending)

            def requests(resend=resend, closed=closed, lock=lock):
                for batch in resend:
                    if closed.is_set():
                        return
                    yield batch.request
                while True:
                    with lock:
                        if closed.is_set():
                            return
                        try:
                            batch = next(source, None)
                        except Exception as e:  # the caller's iterable
                            source_failure.append(e)
                            return
                        if batch is None:
                            return
                        if not batch.index_map:
                            unsent.extend(batch.local_rejections)
                            continue
                        pending.append(batch)
                    yield batch.request

            try:
                responses = self._ingest.PushStream(requests(),
                                                    metadata=self._metadata)
                for response in responses:
                    with lock:
                        batch = pending.popleft()
                    result._add(batch, response)
                    failures = 0
                with lock:
                    closed.set()
                result.rejected.extend(unsent)
                result.rejected.sort(key=lambda r: r.index)
                if source_failure:
                    # Everything read before the failure is durable.
                    source_failure[0].partial = result
                    raise source_failure[0]
                return result
            except grpc.RpcError as e:
                with lock:
                    closed.set()
                error = _error(e, "Ingest.PushStream")
                rate_limited = (error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                                and error.retry_after is not None)
                if (error.code in _RETRYABLE or rate_limited) and \
                        failures < max_retries:
                    failures += 1
                    result.retries += 1
                    time.sleep(error.retry_after if rate_limited
                               else backoff * (2 ** (failures - 1)))
                    continue
                result.rejected.extend(unsent)
                result.rejected.sort(key=lambda r: r.index)
                error.partial = result
                raise error from None

    @staticmethod
    def _batches(observations, dataset, batch_size):
        """Yields _Batch objects; conversion failures become rejections."""
        request = pb.PushRequest(dataset=dataset)
        local = []
        index_map = []
        items = iter(observations)
        failure = None
        i = -1
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except Exception as e:  # the caller's iterable failed
                failure = e
                break
            i += 1
            try:
                request.observations.append(to_observation(item))
                index_map.append(i)
            except ValueError as e:
                field, _, why = str(e).partition(": ")
                local.append(Rejection(i, field, why or str(e)))
            if len(index_map) == batch_size:
                yield _Batch(index_map, request, local)
                request = pb.PushRequest(dataset=dataset)
                local, index_map = [], []
        if index_map or local:
            yield _Batch(index_map, request, local)
        if failure is not None:
            raise failure

    # ------------------------------------------------------------- query

    def aggregate(self, metrics, *, dataset="sessions", group_by=(),
                  filters=None, measure_filters=None, epsilon=0.0,
                  confidence=0.0, interval="NOISE", accuracy=None,
                  adjust_for=None):
        """One DP release as a pandas DataFrame: a row per released cohort,
        the group_by dimensions first, then per metric its value and
        `<metric>_ci_low` / `<metric>_ci_high` (QUANTILES: `<metric>_q<q>`
        and its bounds). A metric without an Estimate in a cohort (its
        contributor gate failed) is NaN there.

        metrics: specs ("sessions", "rate:verified_success=true",
        "quantiles:actions_per_prompt", "geometric_mean:words_per_prompt",
        "NAME=mean:prompts", ...) or Metric protos. filters: {dim: [values]}
        or "DIM=V1,V2" specs. measure_filters: "lines_added>=1" specs.
        interval: "NOISE" or "NOISE_AND_SAMPLING". accuracy: (half_width,
        cohort_sessions) to let the server pick the smallest epsilon.
        adjust_for: dimensions every RATE/MEAN spec is adjusted for.

        df.attrs holds release_id, from_cache, cost, budget, data_as_of,
        interval and confidence.
        """
        request = pb.AggregateRequest(
            dataset=dataset, group_by=list(group_by), epsilon=epsilon,
            confidence=confidence)
        if isinstance(metrics, (str, pb.Metric)):
            metrics = [metrics]
        request.metrics.extend(specs.to_metrics(metrics, adjust_for))
        request.filters.extend(specs.to_filters(filters))
        request.measure_filters.extend(specs.to_measure_filters(measure_filters))
        try:
            request.interval = pb.IntervalKind.Value(interval)
        except ValueError:
            raise ValueError(f"interval {interval!r}: one of " + ", ".join(
                pb.IntervalKind.keys())) from None
        if accuracy is not None:
            half_width, cohort_sessions = accuracy
            request.accuracy.half_width = half_width
            request.accuracy.cohort_sessions = cohort_sessions
        response = self._call(self._query.Aggregate, request,
                              "Query.Aggregate")
        return to_frame(request, response)

    def aggregate_raw(self, request):
        """Sends an AggregateRequest proto as is; returns the response proto."""
        return self._call(self._query.Aggregate, request, "Query.Aggregate")

    def describe(self, dataset="sessions"):
        """The dataset's public description (schema, bounds, privacy
        parameters) as a dict with the proto's field names."""
        response = self._call(self._query.DescribeDataset,
                              pb.DescribeDatasetRequest(dataset=dataset),
                              "Query.DescribeDataset")
        return _as_dict(response)

    def budget(self, dataset="sessions"):
        """The caller's budget: {"principal", "dataset", "total", "spent",
        "remaining"}, each cost a dict of epsilon, delta and rho."""
        response = self._call(self._query.GetBudget,
                              pb.GetBudgetRequest(dataset=dataset),
                              "Query.GetBudget")
        return _as_dict(response)

    # ------------------------------------------------------------- admin

    def seal_snapshot(self, dataset="sessions"):
        """Admin role: seals a snapshot now, so queries read every push
        acknowledged before. Returns the seal time (aware datetime, UTC)."""
        response = self._call(self._admin.SealSnapshot,
                              pb.SealSnapshotRequest(dataset=dataset),
                              "Admin.SealSnapshot")
        return response.sealed_at.ToDatetime().replace(
            tzinfo=datetime.timezone.utc)

    def _call(self, method, request, name):
        try:
            return method(request, metadata=self._metadata,
                          timeout=self._timeout)
        except grpc.RpcError as e:
            raise _error(e, name) from None


def _error(rpc_error, method):
    error = CohortdError.from_rpc_error(rpc_error, method)
    if (error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            and error.retry_after is None):
        return BudgetExhaustedError(error.code, error.message, method)
    return error


def _as_dict(message):
    """A proto as a dict with its own field names and every field present."""
    return json_format.MessageToDict(message,
                                     preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def _read(value):
    """bytes as is, a path's contents, or None."""
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


def to_frame(request, response):
    """The DataFrame of aggregate() for a request and its response."""
    import pandas as pd  # analysts' dependency only; workers never load it

    order = [specs.metric_output_name(m) for m in request.metrics]
    rows = []
    seen = []
    for cohort in response.cohorts:
        row = {d: cohort.key.get(d) for d in request.group_by}
        for est in cohort.estimates:
            if est.metric not in seen:
                seen.append(est.metric)
            if est.quantiles:
                for q in est.quantiles:
                    col = f"{est.metric}_q{q.q:g}"
                    row[col] = q.value
                    row[col + "_ci_low"] = q.ci_low
                    row[col + "_ci_high"] = q.ci_high
            else:
                row[est.metric] = est.value
                row[est.metric + "_ci_low"] = est.ci_low
                row[est.metric + "_ci_high"] = est.ci_high
        rows.append(row)
    # Columns: dimensions, then metrics in the order asked (the server
    # answers in its canonical order), then any the guess missed.
    metric_order = [m for m in order if m in seen] + [
        m for m in seen if m not in order]
    columns = list(request.group_by)
    present = set().union(*[r.keys() for r in rows]) if rows else set()
    for m in metric_order:
        columns += sorted((c for c in present
                           if c == m or c.startswith(m + "_")),
                          key=lambda c: (c != m, _quantile_key(c, m)))
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["release_id"] = response.release_id
    frame.attrs["from_cache"] = response.from_cache
    frame.attrs["cost"] = _as_dict(response.cost)
    frame.attrs["budget"] = _as_dict(response.budget)
    frame.attrs["data_as_of"] = (
        response.data_as_of.ToDatetime().replace(tzinfo=datetime.timezone.utc)
        if response.HasField("data_as_of") else None)
    frame.attrs["interval"] = pb.IntervalKind.Name(request.interval)
    frame.attrs["confidence"] = request.confidence or 0.95
    return frame


def _quantile_key(column, metric):
    """Sorts value, ci_low, ci_high; quantile columns by q."""
    rest = column[len(metric):]
    suffix_rank = 0 if not rest.endswith(("_ci_low", "_ci_high")) else (
        1 if rest.endswith("_ci_low") else 2)
    q = 0.0
    if rest.startswith("_q"):
        try:
            q = float(rest[2:].split("_")[0])
        except ValueError:
            q = 0.0
    return (q, suffix_rank)
