# The image the Helm chart runs (helm/callstream, image.repository). Build: docker build -t callstream .
# Not built in this repository's CI (no Docker engine there); the chart's tests render it only.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY callstream callstream
COPY producers producers
COPY consumers consumers
COPY sandbox sandbox
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --uid 1001 --no-create-home --shell /usr/sbin/nologin callstream
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY schemas /app/schemas
ENV CALLSTREAM_SCHEMAS_DIR=/app/schemas \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1001
ENTRYPOINT ["callstream"]
