FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agentstream agentstream
COPY streams streams
COPY projections projections
COPY adapters adapters
COPY local local
RUN pip install --no-cache-dir .
USER nobody
CMD ["agentstream", "--help"]
