"""The `mlops serve` command line: a thin layer over model_server.server.run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlops_operator.cli import main
from model_server import server
from model_server.settings import ServerSettings


def test_help_lists_the_settings() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in (
        "--model-uri",
        "--model-digest",
        "--variant",
        "--max-batch-size",
        "--allow-pickle",
    ):
        assert flag in result.output


def test_digest_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_MODEL_DIGEST", raising=False)
    result = CliRunner().invoke(main, ["serve", "--model-uri", "file:///models/iris"])
    assert result.exit_code == 2
    assert "--model-digest" in result.output


def test_flags_and_environment_reach_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[ServerSettings] = []

    def fake_run(settings: ServerSettings) -> int:
        seen.append(settings)
        return 1

    monkeypatch.setattr(server, "run", fake_run)
    monkeypatch.setenv("MLOPS_VARIANT", "canary")
    monkeypatch.setenv("MLOPS_FEEDBACK_CAPACITY", "7")
    result = CliRunner().invoke(
        main,
        [
            "serve",
            f"--model-uri={tmp_path}",
            "--model-digest=sha256:" + "0" * 64,
            "--port=9000",
            "--allow-pickle",
        ],
    )
    assert result.exit_code == 1
    (settings,) = seen
    assert (settings.variant, settings.port, settings.allow_pickle) == ("canary", 9000, True)
    assert settings.feedback_capacity == 7


def test_a_digest_with_a_trailing_newline_is_a_format_error_naming_the_flag() -> None:
    result = CliRunner().invoke(
        main,
        [
            "serve",
            "--model-uri",
            "file:///models/iris",
            "--model-digest",
            "sha256:" + "a" * 64 + "\n",
        ],
    )
    assert result.exit_code == 2
    assert "--model-digest" in result.output
    assert "sha256:<64 lowercase hex>" in result.output
