# syntax=docker/dockerfile:1
#
# koc-example-leader in a container image, for charts/koc-example:
#
#   docker build -t REGISTRY/koc-example-leader:0.1.0 .
#   docker push REGISTRY/koc-example-leader:0.1.0
#
# The build stage compiles on Debian 12 with the -dev packages; the runtime
# stage is debian:12-slim with only the shared libraries the binary links
# (tests/image/check.sh compares this list with ldd's), running as the
# chart's non-root UID with the binary as ENTRYPOINT: nothing at run time
# needs a shell.

FROM debian:12 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libcurl4-openssl-dev libcjson-dev libssl-dev libmicrohttpd-dev libgnutls28-dev libsystemd-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DKOC_BUILD_APISERVER=OFF \
    && cmake --build /build -j"$(nproc)" --target koc-example-leader \
    && install -D -s /build/examples/leader/koc-example-leader /out/koc-example-leader

FROM debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4 libcjson1 libssl3 libgnutls30 libmicrohttpd12 libsystemd0 libyaml-0-2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/koc-example-leader /usr/local/bin/koc-example-leader
# The chart's podSecurityContext.runAsUser / runAsGroup.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/koc-example-leader"]
