# cohortd container image, in two stages:
#   build    debian:12 with the packages of scripts/setup: configures, builds
#            everything and runs the unit tests, so a broken tree never
#            yields an image
#   runtime  debian:12-slim with only the shared libraries listed in
#            deploy/runtime-packages.txt, the cohortd and cohortctl binaries
#            and the reference config, run as the non-root user cohortd
#
#   docker build -t cohortd .
#   docker run --rm -v cohortd-data:/var/lib/cohortd \
#     -v "$PWD/my-cohortd.yaml:/etc/cohortd/cohortd.yaml:ro" cohortd
#
# No Docker engine runs on the development machines: scripts/check-runtime-
# layout builds the same runtime layout (same package list, same paths) in a
# temp dir and runs the server from it; tests/deploy lints this file.

# ---------------------------------------------------------------- build
FROM debian:12 AS build
WORKDIR /src
# scripts/setup alone first, so the package layer is cached across source
# changes. It runs apt-get update and installs what the build and tests need.
COPY scripts/setup scripts/setup
RUN scripts/setup && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build \
 && cd /build && ctest -L unit --output-on-failure

# ---------------------------------------------------------------- runtime
FROM debian:12-slim AS runtime
# One list, shared with scripts/check-runtime-layout, so they cannot drift.
COPY deploy/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/runtime-packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# A fixed uid/gid, so volume ownership and Kubernetes' runAsUser/fsGroup
# agree with the image.
RUN groupadd --system --gid 10001 cohortd \
 && useradd --system --uid 10001 --gid cohortd --no-create-home \
      --home-dir /var/lib/cohortd --shell /usr/sbin/nologin cohortd \
 && install -d -o cohortd -g cohortd -m 0700 /var/lib/cohortd
COPY --from=build /build/server/cohortd /usr/local/bin/cohortd
COPY --from=build /build/tools/cohortctl/cohortctl /usr/local/bin/cohortctl
# The documented reference config (TLS on, loopback addresses): deployments
# mount their own over it, e.g. deploy/compose/cohortd.yaml or the
# Kubernetes ConfigMap.
COPY config/cohortd.yaml /etc/cohortd/cohortd.yaml
USER cohortd:cohortd
WORKDIR /var/lib/cohortd
# RocksDB store and, unless the config names another path, the
# pseudonymisation key: back them up together.
VOLUME ["/var/lib/cohortd"]
# 7443 gRPC; 9464 the dashboards' metrics (DP publications only); 9465 the
# operators' metrics (record-derived series; admin token off loopback).
EXPOSE 7443 9464 9465
# grpc.health.v1 needs no token. Plaintext: with server.tls enabled,
# override it with `cohortctl --tls-ca FILE --target HOST:7443 health`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/cohortctl", "--target", "127.0.0.1:7443", "health"]
# SIGTERM stops cohortd gracefully (in-flight pushes are committed first).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cohortd", "--config", "/etc/cohortd/cohortd.yaml"]
