"""Imports the generated protobuf and gRPC stubs of cohortd's public API.

The stubs are generated at build time (`cmake --build build -t
python_client_stubs`, part of the default build) into
build/clients/python/gen. They are found on sys.path, else under the
directory named by $COHORTD_PY_STUBS, else in the checkout's build/ folder.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("COHORTD_PY_STUBS")
    if env:
        yield env
    # clients/python/cohortd_client -> the checkout's build/ folder.
    yield os.path.join(_HERE, "..", "..", "..", "build", "clients", "python",
                       "gen")


try:
    from cohortd.v1 import cohortd_pb2 as pb  # noqa: F401
    from cohortd.v1 import cohortd_pb2_grpc as pb_grpc  # noqa: F401
except ImportError:
    for path in _candidates():
        if os.path.isfile(os.path.join(path, "cohortd", "v1", "cohortd_pb2.py")):
            sys.path.insert(0, os.path.abspath(path))
            break
    else:
        raise ImportError(
            "cohortd_client: the generated stubs (cohortd/v1/cohortd_pb2.py) "
            "were not found; build them with `cmake --build build -t "
            "python_client_stubs` or set COHORTD_PY_STUBS to their folder"
        ) from None
    from cohortd.v1 import cohortd_pb2 as pb  # noqa: F401
    from cohortd.v1 import cohortd_pb2_grpc as pb_grpc  # noqa: F401
