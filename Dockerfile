# AgentMesh control plane and agents: one image, the command picks the role.
#   docker build -t agentmesh:0.1.0 .
#   docker run agentmesh:0.1.0 up                       (control plane on :8000)
#   docker run agentmesh:0.1.0 agent start worker-1 --capabilities echo
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# the project itself from this context; its dependencies' floors are in pyproject.toml
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --prefix=/install ".[brokers]"

FROM python:3.11-slim
RUN groupadd --system --gid 10001 agentmesh \
    && useradd --system --uid 10001 --gid agentmesh --home-dir /app --shell /usr/sbin/nologin agentmesh \
    && mkdir -p /app/data \
    && chown -R agentmesh:agentmesh /app
COPY --from=build /install /usr/local
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    AGENTMESH_DATA_DIR=/app/data \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    ENVIRONMENT=production
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["agentmesh"]
CMD ["up", "--host", "0.0.0.0", "--port", "8000"]
