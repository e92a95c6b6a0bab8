"""The Dockerfile and its pinned dependencies (test_images.py builds it, with buildah)."""

from __future__ import annotations

import json
import re
import tomllib

from .tools import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
LOCK = REPO / "hack" / "image-requirements.txt"


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_multi_stage_on_a_pinned_slim_base() -> None:
    steps = instructions()
    assert sum(word == "FROM" for word, _ in steps) >= 2
    (base,) = (rest for word, rest in steps if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image
    assert all(rest.startswith("${PYTHON_IMAGE}") for word, rest in steps if word == "FROM")


def test_runs_as_a_non_root_user_with_mlops_as_entrypoint() -> None:
    final = final_stage()
    users = [rest for word, rest in final if word == "USER"]
    assert users
    user = users[-1].split(":")[0]
    assert user.isdigit()
    assert int(user) != 0
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoint
    assert json.loads(entrypoint[-1]) == ["mlops"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mlops" in scripts


def test_copies_only_what_exists_and_what_the_context_admits() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert (
        ignore[next(i for i, line in enumerate(ignore) if line.strip() and line[0] != "#")] == "*"
    )
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in (s.rstrip("/") for s in sources):
            assert (REPO / source).exists(), source
            assert source in admitted, f"{source} is not admitted by .dockerignore"


def test_lock_pins_every_dependency_at_pyprojects_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[name] = version
    for requirement in project["dependencies"]:
        spec = requirement.split(";")[0].strip()
        name, _, version = spec.partition("==")
        name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
        assert version, f"{requirement} is not pinned"
        assert locked.get(name) == version, (
            f"{name}: pyproject.toml pins {version}, hack/image-requirements.txt "
            f"{locked.get(name)}: run hack/lock-image.sh"
        )
    assert all(re.fullmatch(r"[\w.+!-]+", v) for v in locked.values())


def test_no_registry_host_in_the_dockerfile() -> None:
    for word, rest in instructions():
        if word == "ARG" and rest.startswith("PYTHON_IMAGE="):
            name = rest.split("=", 1)[1].split("@")[0].split(":")[0]
            first = name.split("/")[0]
            assert "/" not in name or not ({".", ":"} & set(first)), name
