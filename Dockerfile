# syntax=docker/dockerfile:1
# The one image of mlops-operator: the operator (`mlops operator`), the training Pods
# (`mlops train`) and the model servers (`mlops serve`) all run it.
#
#   docker build -t mlops-operator:0.1.0 .
#
# The base is pinned to a Python patch release; pin its digest too where your builds must be
# reproducible: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
# Python dependencies are pinned, transitive ones included, in hack/image-requirements.txt
# (hack/lock-image.sh writes it from pyproject.toml).
# Any base with `python3` and its venv module works: hack/images/build.sh passes a Debian
# bookworm made with mmdebstrap (python3, python3-venv), where no registry can be reached.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtualenv with the pinned dependencies and the package --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/mlops
# Dependencies first: this layer is reused until the pins change.
COPY hack/image-requirements.txt hack/image-requirements.txt
# The test suites inside the scientific wheels (about 120 MB) are never imported.
RUN /opt/mlops/bin/pip install --only-binary=:all: --requirement hack/image-requirements.txt \
 && cd /opt/mlops/lib/python3*/site-packages \
 && find numpy pandas pyarrow scipy sklearn -depth -type d -name tests -exec rm -rf {} +
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY model_server/ model_server/
COPY trainer/ trainer/
RUN /opt/mlops/bin/pip install --no-deps . \
 && /opt/mlops/bin/pip check \
 && /opt/mlops/bin/python -m compileall -q /opt/mlops/lib

# --- runtime: the virtualenv on a clean base, as a non-root user -------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mlops-operator" \
      org.opencontainers.image.description="Trains scikit-learn models and rolls them out safely on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mlops \
 && useradd --system --uid 10001 --gid mlops --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin mlops
COPY --from=build /opt/mlops /opt/mlops
# Bytecode is compiled at build time: nothing needs to write next to the code, so the root
# filesystem can be read-only (the chart mounts an emptyDir on /tmp).
ENV PATH=/opt/mlops/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so that runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["mlops"]
CMD ["--help"]
