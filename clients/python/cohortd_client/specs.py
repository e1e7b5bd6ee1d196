"""The small spec languages shared with `cohortctl query`, parsed into protos.

    metric   [NAME=]sessions | accounts | sum:MEASURE | mean:MEASURE |
             geometric_mean:MEASURE | rate:DIM=V1,V2 |
             quantiles:MEASURE[:Q1,Q2,...]
    filter   {"DIM": ["V1", "V2"]} or "DIM=V1,V2"
    measure filter  "MEASURE>X", "MEASURE>=X", "MEASURE<X", "MEASURE<=X"
             (several conditions on one measure: "X<=MEASURE<Y" is not
             parsed; pass two specs or a MeasureFilter proto)

Only the syntax is checked here; whether a dimension or measure exists is the
server's call (its INVALID_ARGUMENT names the allowed values).
"""

import math
import re

from cohortd_client._stubs import pb

# A box plot's whiskers (5th/95th percentile) and box, as in cohortctl.
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

_KINDS = {
    "sessions": pb.Metric.SESSIONS,
    "accounts": pb.Metric.ACCOUNTS,
    "sum": pb.Metric.SUM,
    "mean": pb.Metric.MEAN,
    "geometric_mean": pb.Metric.GEOMETRIC_MEAN,
    "rate": pb.Metric.RATE,
    "quantiles": pb.Metric.QUANTILES,
}
_NEEDS_MEASURE = {"sum", "mean", "geometric_mean", "quantiles"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEASURE_FILTER = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*([^\s]+)\s*$")


def parse_filter(spec):
    """Parses "DIM=V1,V2" into a Filter. Raises ValueError on bad syntax."""
    if "=" not in spec:
        raise ValueError(f"filter {spec!r}: expected DIM=V1,V2")
    dim, values = spec.split("=", 1)
    dim = dim.strip()
    vals = [v.strip() for v in values.split(",")]
    if not dim or any(not v for v in vals):
        raise ValueError(f"filter {spec!r}: empty dimension or value")
    return pb.Filter(dimension=dim, any_of=vals)


def to_filters(filters):
    """A list of Filter protos from a dict {dim: values}, a list of
    "DIM=V1,V2" specs or Filter protos, or None."""
    if not filters:
        return []
    if isinstance(filters, dict):
        out = []
        for dim, values in filters.items():
            if isinstance(values, str):
                values = [values]
            out.append(pb.Filter(dimension=dim, any_of=[str(v) for v in values]))
        return out
    out = []
    for f in filters:
        out.append(f if isinstance(f, pb.Filter) else parse_filter(f))
    return out


def parse_metric(spec):
    """Parses one metric spec (the module docstring's language) into a
    Metric. Raises ValueError naming what is wrong."""
    name = ""
    body = spec.strip()
    head = body.split(":", 1)[0]
    # "NAME=" prefix: told apart from rate's "DIM=" by having no ':' before it.
    if "=" in head and not head.startswith("rate"):
        name, body = body.split("=", 1)
        name = name.strip()
        if not _NAME.match(name):
            raise ValueError(f"metric {spec!r}: bad output name {name!r}")
    parts = body.split(":")
    kind = parts[0].strip().lower()
    if kind not in _KINDS:
        raise ValueError(
            f"metric {spec!r}: unknown kind {kind!r}; one of "
            + ", ".join(sorted(_KINDS)))
    metric = pb.Metric(kind=_KINDS[kind], name=name)
    args = parts[1:]
    if kind in ("sessions", "accounts"):
        if args:
            raise ValueError(f"metric {spec!r}: {kind} takes no argument")
    elif kind == "rate":
        if len(args) != 1:
            raise ValueError(f"metric {spec!r}: expected rate:DIM=V1,V2")
        metric.rate_of.CopyFrom(parse_filter(args[0]))
    elif kind in _NEEDS_MEASURE:
        if not args or not args[0].strip():
            raise ValueError(f"metric {spec!r}: expected {kind}:MEASURE")
        metric.measure = args[0].strip()
        if kind == "quantiles":
            if len(args) > 2:
                raise ValueError(f"metric {spec!r}: too many ':' parts")
            qs = DEFAULT_QUANTILES
            if len(args) == 2:
                try:
                    qs = [float(q) for q in args[1].split(",")]
                except ValueError:
                    raise ValueError(
                        f"metric {spec!r}: quantiles must be numbers") from None
            for q in qs:
                if not 0 < q < 1:
                    raise ValueError(
                        f"metric {spec!r}: quantile {q} is not in (0, 1)")
            metric.quantiles.extend(qs)
        elif len(args) > 1:
            raise ValueError(f"metric {spec!r}: too many ':' parts")
    return metric


def to_metrics(metrics, adjust_for=None):
    """Metric protos from specs (strings) or Metric protos. `adjust_for`
    (dimensions) is added to every RATE and MEAN metric given as a spec."""
    if not metrics:
        raise ValueError("at least one metric is needed, e.g. 'sessions'")
    out = []
    for m in metrics:
        if isinstance(m, pb.Metric):
            out.append(m)
            continue
        metric = parse_metric(m)
        if adjust_for and metric.kind in (pb.Metric.RATE, pb.Metric.MEAN):
            metric.adjust_for.extend(adjust_for)
        out.append(metric)
    return out


def parse_measure_filter(spec):
    """Parses "MEASURE>X" (or >=, <, <=) into a MeasureFilter."""
    match = _MEASURE_FILTER.match(spec)
    if not match:
        raise ValueError(
            f"measure filter {spec!r}: expected MEASURE>X, MEASURE>=X, "
            "MEASURE<X or MEASURE<=X")
    measure, op, value = match.groups()
    try:
        x = float(value)
    except ValueError:
        raise ValueError(
            f"measure filter {spec!r}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"measure filter {spec!r}: bound must be finite")
    f = pb.MeasureFilter(measure=measure)
    setattr(f, {">": "above", ">=": "at_least", "<": "below",
                "<=": "at_most"}[op], x)
    return f


def to_measure_filters(filters):
    """MeasureFilter protos from specs or protos (None: none)."""
    if not filters:
        return []
    if isinstance(filters, str):
        filters = [filters]
    return [f if isinstance(f, pb.MeasureFilter) else parse_measure_filter(f)
            for f in filters]


def metric_output_name(metric):
    """The output name the server derives for `metric` when it has none
    (mirrors cohortctl's MetricOutputName); used only to order columns."""
    if metric.name:
        return metric.name
    kind = pb.Metric.Kind.Name(metric.kind).lower()
    if metric.kind in (pb.Metric.SESSIONS, pb.Metric.ACCOUNTS):
        return kind
    if metric.kind == pb.Metric.RATE:
        f = metric.rate_of
        return "_".join(["rate", f.dimension] + list(f.any_of))
    return f"{kind}_{metric.measure}"
