# The API and worker image for docker-compose.yml / production-like deployments.
# It talks to a real Temporal cluster, PostgreSQL and Redis (no embedded servers).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cli.py worker.py alembic.ini ./
COPY core ./core
COPY contracts ./contracts
COPY accounts ./accounts
COPY orders ./orders
COPY strategies ./strategies
COPY market ./market
COPY storage ./storage
COPY activities ./activities
COPY workflows ./workflows
COPY api ./api
COPY processes ./processes
COPY migrations ./migrations
COPY devstack ./devstack
RUN pip install --no-cache-dir . && useradd --system --uid 10001 engine
# Unprivileged, and nothing to write next to the code: settings come from the environment
# (ORDER_ENGINE_API_KEY_SECRET included), so no data directory is needed.
USER engine

EXPOSE 8000
CMD ["order-engine", "api"]
