# llmrouter container image (docs/docker.md):
#
#   docker build -t llmrouter .
#   docker run --rm -p 127.0.0.1:8080:8080 -e LLMROUTER_ALLOW_UNAUTHENTICATED=true \
#     -e OPENAI_API_KEY llmrouter
#
# Build stage: everything it does is config/docker/build.sh, which
# tests/deploy/run.sh also runs on the host, so the build is tested even
# where no Docker engine runs. Runtime stage: debian:bookworm-slim with only
# the packages build.sh found the binary needs (plus ca-certificates and
# curl for the HEALTHCHECK), running as an unprivileged user.
# Configuration: /etc/llmrouter/llmrouter.yaml (config/docker/llmrouter.yaml;
# mount your own over it); provider keys: environment variables.

FROM debian:bookworm AS build
COPY Makefile /src/Makefile
COPY src /src/src
COPY include /src/include
COPY config /src/config
RUN sh /src/config/docker/build.sh /src /out

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin llmrouter
COPY --from=build /out/rootfs/ /
USER llmrouter:llmrouter
EXPOSE 8080
# SIGTERM: requests in flight get server.shutdown_grace_ms (5 s) to finish,
# inside docker stop's default 10 s. SIGHUP reloads the configuration
# (docker kill -s HUP). The daemon handles both as PID 1 (it waits for them
# with sigwait), so no init process is needed.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "--max-time", "2", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/bin/llmrouter"]
CMD ["-c", "/etc/llmrouter/llmrouter.yaml"]
