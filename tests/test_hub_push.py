"""Pushing to the Hub: dry-run is offline, the upload holds exactly the dataset files, errors are clear,
and the token never leaks into files or output."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import huggingface_hub
import pytest
import typer
from _hub_folder import make_folder
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard
from huggingface_hub.errors import HfHubHTTPError, HTTPError
from typer.testing import CliRunner

from longtasks.commands.hub import register
from longtasks.hub import DatasetFolderError, HubPushError, push, write_card

FAKE_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdefXYZ"
REPO = "someone/longtasks-test"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    make_folder(out)
    (out / "notes.txt").write_text("local notes, never uploaded")
    write_card(out)
    return out


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()
    register(cli)
    return cli


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or Hub API call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for method in ("create_repo", "create_commit", "upload_folder", "list_repo_files", "whoami"):
        monkeypatch.setattr(huggingface_hub.hf_api.HfApi, method, refuse)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _expected_files(folder: Path) -> list[str]:
    shards = sorted(p.relative_to(folder).as_posix() for p in (folder / "data").rglob("*.parquet"))
    return ["README.md", "longtasks.json", *shards]


def _in_order(paths: list[str]) -> list[str]:
    """README and manifest first, then the shards (compared sorted: their order is the manifest's)."""
    return [*paths[:2], *sorted(paths[2:])]


class FakeApi:
    """Stands in for HfApi: records calls; `fail` maps a method name to the exception it raises."""

    instances: ClassVar[list[FakeApi]] = []
    fail: ClassVar[dict[str, Exception]] = {}
    remote_files: ClassVar[list[str]] = []

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls: list[tuple[str, tuple, dict]] = []
        FakeApi.instances.append(self)

    def _call(self, name, args, kwargs):
        self.calls.append((name, args, kwargs))
        if name in FakeApi.fail:
            raise FakeApi.fail[name]

    def create_repo(self, *args, **kwargs):
        self._call("create_repo", args, kwargs)
        return f"https://huggingface.co/datasets/{args[0]}"

    def list_repo_files(self, *args, **kwargs):
        self._call("list_repo_files", args, kwargs)
        return list(FakeApi.remote_files)

    def create_commit(self, *args, **kwargs):
        self._call("create_commit", args, kwargs)

        class Info:
            commit_url = f"https://huggingface.co/datasets/{args[0]}/commit/abc"

        return Info()


@pytest.fixture
def fake_api(monkeypatch):
    FakeApi.instances = []
    FakeApi.fail = {}
    FakeApi.remote_files = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def _http_error(status: int, message: str) -> HfHubHTTPError:
    """What huggingface_hub raises for an HTTP error status (response stubbed: no HTTP library needed)."""
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(f"{status} error", response=response, server_message=message)


def test_dry_run_is_offline_and_lists_exactly_the_dataset_files(
    folder: Path, no_network, monkeypatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    before = _snapshot(folder)
    plan = push(folder, REPO, dry_run=True)
    assert plan.dry_run and plan.repo_id == REPO
    assert _in_order([f.path_in_repo for f in plan.files]) == _expected_files(folder)
    for f in plan.files[1:]:
        assert f.size == (folder / f.path_in_repo).stat().st_size
    assert plan.configs == (
        "story_retrieval-1k",
        "story_retrieval-2k",
        "story_multihop-1k",
        "story_multihop-2k",
    )
    assert plan.rows == 20
    assert plan.token_source == "HF_TOKEN"
    assert FAKE_TOKEN not in repr(plan)
    assert _snapshot(folder) == before


def test_dry_run_cli_output(folder: Path, app, no_network, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    result = CliRunner().invoke(app, ["push", str(folder), "--repo-id", REPO, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run, nothing uploaded" in result.output
    for name in _expected_files(folder):
        assert name in result.output
    assert "notes.txt" not in result.output
    assert "token: from HF_TOKEN" in result.output
    assert FAKE_TOKEN not in result.output


def test_push_uploads_card_manifest_and_shards_only(folder: Path, fake_api, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    fake_api.remote_files = [
        "README.md",
        "data/story_retrieval-1k/test-00000.parquet",
        "data/old-1k/x.parquet",
    ]
    before = _snapshot(folder)
    plan = push(folder, REPO, private=True)
    assert _snapshot(folder) == before  # the local folder is never rewritten
    api = fake_api.instances[-1]
    assert api.token == FAKE_TOKEN
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "list_repo_files", "create_commit"]
    _, args, kwargs = api.calls[0]
    assert args == (REPO,) and kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    _, args, kwargs = api.calls[2]
    assert kwargs["repo_type"] == "dataset"
    operations = args[1]
    added = [op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)]
    deleted = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
    assert _in_order(added) == _expected_files(folder)
    assert deleted == ["data/old-1k/x.parquet"]  # stale shards would otherwise be loaded by the glob
    card_op = operations[0]
    card = DatasetCard(card_op.path_or_fileobj.decode("utf-8"))
    assert f'load_dataset("{REPO}"' in card.text
    assert len(card.data.to_dict()["configs"]) == 4
    assert plan.url.endswith(REPO) and plan.deleted == ("data/old-1k/x.parquet",)


def test_explicit_token_wins_over_environment(folder: Path, fake_api, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnvironment")
    plan = push(folder, REPO, token=FAKE_TOKEN)
    assert fake_api.instances[-1].token == FAKE_TOKEN
    assert plan.token_source == "--token"


def test_a_pasted_token_is_stripped_and_a_broken_one_refused_without_echo(folder: Path, fake_api) -> None:
    push(folder, REPO, token=f" {FAKE_TOKEN}\r\n")
    assert fake_api.instances[-1].token == FAKE_TOKEN
    for broken in (f"{FAKE_TOKEN[:10]}\r{FAKE_TOKEN[10:]}", f"{FAKE_TOKEN}é"):
        with pytest.raises(
            ValueError, match="--token holds a space, control or non-ASCII character"
        ) as caught:
            push(folder, REPO, token=broken)
        assert FAKE_TOKEN[:10] not in str(caught.value)


def test_a_transport_error_quoting_any_token_is_scrubbed(folder: Path, fake_api) -> None:
    """The HTTP layer quotes the header it could not send (`b'Bearer hf_...'`), in whatever escaped form."""
    other = "hf_AnotherTokenFromTheLoginCache42"
    fake_api.fail = {"create_repo": HTTPError(f"Illegal header value b'Bearer {other}\\r' ({FAKE_TOKEN!r})")}
    with pytest.raises(HubPushError, match="could not reach the Hugging Face Hub") as caught:
        push(folder, REPO, token=FAKE_TOKEN)
    assert other not in str(caught.value) and FAKE_TOKEN not in str(caught.value)
    assert "hf_***" in str(caught.value)


def test_no_token_is_a_clear_error(folder: Path, fake_api, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(HubPushError, match="no Hugging Face token found"):
        push(folder, REPO)
    assert fake_api.instances == []
    assert push(folder, REPO, dry_run=True).token_source is None


@pytest.mark.parametrize(
    ("status", "step", "hints"),
    [
        (401, "create_repo", ["rejected", "settings/tokens"]),
        (403, "create_repo", ["'write' role", "organisation"]),
        (403, "create_commit", ["uploading the files", "write"]),
        (404, "create_repo", ["namespace 'someone' does not exist"]),
    ],
)
def test_http_errors_give_clear_messages_and_leave_folder_untouched(
    folder: Path, fake_api, app, monkeypatch, status: int, step: str, hints: list[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    fake_api.fail = {step: _http_error(status, f"denied for {FAKE_TOKEN}")}
    before = _snapshot(folder)
    with pytest.raises(HubPushError) as caught:
        push(folder, REPO)
    message = str(caught.value)
    assert REPO in message and f"HTTP {status}" in message and "local folder was changed" in message
    for hint in hints:
        assert hint in message
    assert FAKE_TOKEN not in message  # scrubbed even when the server echoes it
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    result = CliRunner().invoke(app, ["push", str(folder), "--repo-id", REPO])
    assert result.exit_code == 2
    assert REPO in result.output and FAKE_TOKEN not in result.output
    assert _snapshot(folder) == before


def test_connection_error_is_explained(folder: Path, fake_api, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    fake_api.fail = {"create_repo": HTTPError("Name or service not known")}  # transport error base
    with pytest.raises(HubPushError, match="could not reach the Hugging Face Hub"):
        push(folder, REPO)


def test_incomplete_folder_is_refused(tmp_path: Path, app, no_network) -> None:
    out = tmp_path / "out"
    make_folder(out, incomplete=("story_retrieval-2k",))
    write_card(out)
    for dry_run in (True, False):
        with pytest.raises(DatasetFolderError, match=r"incomplete: config\(s\) story_retrieval-2k"):
            push(out, REPO, dry_run=dry_run, token=FAKE_TOKEN)
    result = CliRunner().invoke(app, ["push", str(out), "--repo-id", REPO, "--dry-run"])
    assert result.exit_code == 2 and "story_retrieval-2k" in result.output


@pytest.mark.parametrize("repo_id", ["no-owner", "a/b/c", "bad name/x", ""])
def test_bad_repo_id(folder: Path, repo_id: str, no_network) -> None:
    with pytest.raises(ValueError, match="invalid repo id"):
        push(folder, repo_id, dry_run=True)


@pytest.mark.parametrize("repo_id", ["a/[/x]", "a/[x]"])
def test_a_bad_repo_id_with_brackets_is_quoted_whole_on_one_line(
    folder: Path, app, repo_id: str, no_network
) -> None:
    """The error line quotes the user's input literally (rich markup would eat "[x]" or crash on "[/x]")."""
    result = CliRunner().invoke(app, ["push", str(folder), "--repo-id", repo_id, "--dry-run"])
    assert result.exit_code == 2 and f"invalid repo id '{repo_id}'" in result.output
    assert "Traceback" not in result.output


def test_fake_token_appears_in_no_file_and_no_output(
    folder: Path, fake_api, app, monkeypatch, capfd, caplog, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    runner = CliRunner()
    outputs = [
        runner.invoke(app, ["export", str(folder)]).output,
        runner.invoke(app, ["push", str(folder), "--repo-id", REPO, "--dry-run"]).output,
        runner.invoke(app, ["push", str(folder), "--repo-id", REPO]).output,
        runner.invoke(app, ["push", str(folder), "--repo-id", REPO, "--token", FAKE_TOKEN]).output,
    ]
    fake_api.fail = {"create_commit": _http_error(403, f"token {FAKE_TOKEN} lacks rights")}
    outputs.append(runner.invoke(app, ["push", str(folder), "--repo-id", REPO]).output)
    assert "done: https://huggingface.co/datasets/someone/longtasks-test" in outputs[2]
    captured = capfd.readouterr()
    for text in [*outputs, captured.out, captured.err, caplog.text]:
        assert FAKE_TOKEN not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path
