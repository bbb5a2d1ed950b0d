# agent-activity-exporter as a container: slim, non-root, state on a volume.
#
#   docker build -t agent-activity-exporter .
#   docker run -d -p 9464:9464 -v exporter-state:/var/lib/agent-activity-exporter \
#     -v $PWD/config.yaml:/etc/agent-activity-exporter/config.yaml:ro agent-activity-exporter
#
# The config's `listen` should stay on port 9464 (the default, 0.0.0.0:9464)
# or set HEALTHCHECK_PORT. `state.path` defaults to ./exporter-state.db, which
# is on the volume (the working directory). The same image runs the simulator:
# `docker run ... agent-activity-exporter simulate --host 0.0.0.0`.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY simulator ./simulator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
LABEL org.opencontainers.image.title="agent-activity-exporter" \
      org.opencontainers.image.description="Polls AI-agent platforms' activity APIs; exports OpenTelemetry traces and Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEALTHCHECK_PORT=9464
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels agent-activity-exporter \
 && rm -rf /tmp/wheels \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/agent-activity-exporter \
            --shell /usr/sbin/nologin exporter \
 && mkdir -p /var/lib/agent-activity-exporter /etc/agent-activity-exporter \
 && chown exporter:exporter /var/lib/agent-activity-exporter
COPY config/example.yaml /etc/agent-activity-exporter/example.yaml
USER 10001:10001
WORKDIR /var/lib/agent-activity-exporter
VOLUME ["/var/lib/agent-activity-exporter"]
EXPOSE 9464
# /healthz is the process only: a platform being down never makes the container unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTHCHECK_PORT', '9464'), timeout=4)"]
ENTRYPOINT ["agent-activity-exporter"]
CMD ["run", "-c", "/etc/agent-activity-exporter/config.yaml", "--log-format", "json"]
