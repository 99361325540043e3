# The API and worker image for docker-compose.yml / production-like deployments.
# It talks to a real Temporal cluster, PostgreSQL and Redis (no embedded servers).
#
# Built next month, it is the same image: the base by digest, every dependency (and the
# build's setuptools) at the version and file hash in requirements.lock (`make lock`).
# The digest is python:3.11-slim's multi-platform index (Python 3.11.15, Debian trixie);
# to move it on: `docker buildx imagetools inspect python:3.11-slim` prints the current one.
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY cli.py worker.py alembic.ini ./
COPY core ./core
COPY contracts ./contracts
COPY accounts ./accounts
COPY orders ./orders
COPY strategies ./strategies
COPY composition ./composition
COPY market ./market
COPY onchain ./onchain
COPY wallets ./wallets
COPY storage ./storage
COPY activities ./activities
COPY workflows ./workflows
COPY api ./api
COPY processes ./processes
COPY migrations ./migrations
COPY devstack ./devstack
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --system --uid 10001 engine
# Unprivileged, and nothing to write next to the code: settings come from the environment
# (ORDER_ENGINE_API_KEY_SECRET included), so no data directory is needed.
USER engine

EXPOSE 8000
CMD ["order-engine", "api"]
