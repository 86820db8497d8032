# syntax=docker/dockerfile:1
# Consentry's image, from the project's own files (docs/operations.md#the-image).
# Build:  docker build -t consentry:0.1.0 .
# The models ship inside their PyPI packages: nothing is downloaded when it runs.
# No secret is baked in: every CONSENTRY_* secret comes from the environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the pinned dependencies and the project into a virtual environment ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Compilers only here, for any dependency without a wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/consentry
ENV PATH=/opt/consentry/bin:$PATH
WORKDIR /src
# The lock first: the dependency layer is rebuilt only when the pins change. It is used as
# constraints, so the runtime dependencies are installed at the tested versions and the
# test and benchmark tools it also pins are left out.
COPY requirements.lock pyproject.toml README.md ./
COPY consentry ./consentry
# torch (which invisible-watermark imports) is pinned to its CPU build, served by
# PyTorch's own index; PyPI's build of the same version carries CUDA (several GB).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu \
      --constraint requirements.lock ".[postgres]" \
 && pip check

# -- run: the environment and nothing else (no compilers, no browser) --------------------
FROM ${PYTHON_IMAGE} AS run
# libgomp1: OpenMP, which the image models' runtime links against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 consentry \
 && useradd --system --uid 10001 --gid consentry --home-dir /home/consentry \
      --create-home --shell /usr/sbin/nologin consentry \
 && install -d -o consentry -g consentry -m 0700 /var/lib/consentry
COPY --from=build /opt/consentry /opt/consentry
ENV PATH=/opt/consentry/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONSENTRY_DATA_DIR=/var/lib/consentry \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/consentry
USER 10001:10001
WORKDIR /home/consentry
VOLUME ["/var/lib/consentry"]
EXPOSE 8000
# Liveness only: /readyz is for the orchestrator's traffic decisions, not for restarts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["consentry"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
