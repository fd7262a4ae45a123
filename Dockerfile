# syntax=docker/dockerfile:1
# One image for every service of the SMS platform (api-gateway, scheduler, dispatcher, reporter,
# the fake SMS provider and the sms-migrate job); docker compose and Kubernetes choose the
# command per service (`python -m gateway`, `python -m dispatcher`, ...).
#
# Why one image and not one per service (a build arg): the services share almost all of their
# dependencies (sms_events, asyncpg, aio-pika, aiohttp, pydantic), so one image is built, scanned,
# pushed and pulled once; every service of a release runs exactly the same library code, which
# matters for an event-sourced system whose contracts live in that library; and the migrations
# job needs every service's migrations anyway. What a service carries but never imports (the
# gateway's FastAPI and uvicorn, the reporter's aiosmtplib, the fake provider) is a few MB.
#
# Build from the repository root: docker build -t sms-platform .   (make up does it for you)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for our packages and all of their dependencies -------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# uv (pinned with its hashes) turns uv.lock into a hashed requirements file of the services'
# runtime dependencies (no dev group, no smsctl); pip builds exactly those wheels and refuses any
# file whose hash differs. Our own packages are then built without dependencies.
COPY scripts/uv-requirements.txt ./
COPY pyproject.toml ./
COPY uv.lock ./
COPY libs/events libs/events
COPY services/api-gateway services/api-gateway
COPY services/scheduler services/scheduler
COPY services/dispatcher services/dispatcher
COPY services/reporter services/reporter
COPY tools/fake-provider tools/fake-provider
COPY tools/smsctl/pyproject.toml tools/smsctl/pyproject.toml
RUN pip install --require-hashes --requirement uv-requirements.txt \
    && uv export --frozen --no-dev --no-emit-workspace --format requirements-txt \
        --package sms-api-gateway --package sms-scheduler --package sms-dispatcher \
        --package sms-reporter --package sms-fake-provider --output-file requirements.txt \
    && pip wheel --wheel-dir /wheels --require-hashes --requirement requirements.txt \
    && pip wheel --wheel-dir /wheels --no-deps \
        ./libs/events \
        ./services/api-gateway \
        ./services/scheduler \
        ./services/dispatcher \
        ./services/reporter \
        ./tools/fake-provider

# --- runtime: the wheels installed into a slim Python, run as a non-root user ---------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="sms-platform" \
      org.opencontainers.image.description="SMS mailing platform services (one image, command per service)" \
      org.opencontainers.image.version="${VERSION}"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

# Where compose's rabbitmq-users one-shot writes the broker's definitions: a new named volume
# mounted here takes this directory's owner, so the one-shot (uid 10001) can write to it.
RUN install -d -o 10001 -g 10001 /broker-definitions

# The wheels are bind-mounted from the build stage, so they never land in a layer. pip
# compiles the .pyc files here, as root, once: at run time the root filesystem can be read-only.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl \
    && pip check

COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/healthcheck.py

# PYTHONDONTWRITEBYTECODE: nothing to write at run time (read-only root filesystem);
# PYTHONUNBUFFERED: JSON log lines leave the process as they are written;
# PYTHONFAULTHANDLER: a hard crash still prints the Python stacks.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    LOG_FORMAT=json \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz

# The services read an optional .env from the working directory; /app holds none.
WORKDIR /app
USER 10001:10001

# Every service serves /healthz on its own port: set HEALTHCHECK_URL per service (compose
# overrides the check itself; Kubernetes ignores it and uses its probes).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/healthcheck.py"]

EXPOSE 8000 8001 8002 8003 8010
CMD ["python", "-m", "gateway"]
