"""cohortd_client: a Python client for cohortd (see docs/python-client.md).

    from cohortd_client import Client
    with Client("127.0.0.1:7443", token) as c:
        result = c.push(observations)            # workers
        df = c.aggregate(["rate:verified_success=true"],
                         group_by=["occupation"])   # analysts
"""

from cohortd_client.client import (Client, PushResult, Rejection, to_frame,
                                   to_observation)
from cohortd_client.errors import BudgetExhaustedError, CohortdError
from cohortd_client.specs import (parse_measure_filter, parse_metric,
                                  DEFAULT_QUANTILES)

__all__ = [
    "Client", "PushResult", "Rejection", "CohortdError",
    "BudgetExhaustedError", "parse_metric", "parse_measure_filter",
    "to_frame", "to_observation", "DEFAULT_QUANTILES",
]
