"""`longtasks push DIR --repo-id OWNER/NAME`: publish an output folder as a Hub dataset repo.

Everything that can be checked offline is checked first (`validate_folder`), so `dry_run=True` is a
complete rehearsal that touches no network. Only README.md, longtasks.json and the manifest's parquet
shards are uploaded. The card uploaded is rendered for the repo (its loading example names `repo_id`);
the local folder is never modified. The token is passed to `huggingface_hub` and nowhere else: it is
not stored on the plan, not logged, and scrubbed from any error text.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import errors as hf_errors
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

from longtasks.hub.card import render_card
from longtasks.hub.folder import CARD_NAME, DATA_DIR, MANIFEST_NAME
from longtasks.hub.validate import check_card, validate_folder

REPO_TYPE = "dataset"

_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    HfHubHTTPError,
    OSError,  # connection errors of requests-based huggingface_hub versions, DNS, TLS
    *((hf_errors.HTTPError,) if isinstance(getattr(hf_errors, "HTTPError", None), type) else ()),
)
"""What a failed request raises: HTTP status errors and transport errors (httpx's base class in
huggingface_hub >= 1.0 is not an OSError)."""


class HubPushError(RuntimeError):
    """The upload failed or could not start; the message says which repo and what to check."""


@dataclass(frozen=True)
class PlannedFile:
    path_in_repo: str
    size: int


@dataclass(frozen=True)
class PushPlan:
    """What a push uploads (or, with `dry_run`, would upload). Holds no credentials."""

    repo_id: str
    private: bool
    dry_run: bool
    files: tuple[PlannedFile, ...]
    configs: tuple[str, ...]
    rows: int
    token_source: str | None
    """Where a token was (or would be) taken from: "--token", "HF_TOKEN", "login cache" or None."""
    url: str | None = None
    commit_url: str | None = None
    deleted: tuple[str, ...] = field(default=())
    """Stale remote files under data/ removed by the push (shards of an earlier, different upload)."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"invalid repo id {repo_id!r}: {error}") from None
    if repo_id.count("/") != 1:
        raise ValueError(
            f"invalid repo id {repo_id!r}: give OWNER/NAME, e.g. my-user/longtasks-story-32k "
            "(OWNER is your user name or an organisation you can write to)"
        )


def _check_token_text(token: str, where: str, fix: str) -> None:
    """Refuse a token holding a space, control or non-ASCII character without echoing it: the HTTP layer
    would fail with a raw codec error, or print the whole header, token included."""
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        raise ValueError(
            f"{where} holds a space, control or non-ASCII character (a token is letters, digits and '_'); {fix}"
        )


def _token_source(token: str | None) -> tuple[str | None, str | None]:
    """(token, where it came from). The explicit token wins, then HF_TOKEN, then the login cache. A pasted
    token's surrounding whitespace is dropped; a broken one is refused, naming where it came from."""
    token = token.strip() if token else token
    if token:
        _check_token_text(token, "--token", "paste the token alone")
        return token, "--token"
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        return None, None
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip() == found:
        name = "HF_TOKEN" if os.environ.get("HF_TOKEN") else "HUGGING_FACE_HUB_TOKEN"
        _check_token_text(
            found, f"the {name} environment variable", f"set {name} to the token alone, or pass --token"
        )
        return found, "HF_TOKEN"
    _check_token_text(
        found,
        "the token in the Hugging Face login cache",
        "run `hf auth login` again with the token alone, or pass --token",
    )
    return found, "login cache"


TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{6,}")
"""What Hugging Face user tokens look like: scrubbed from every message, whichever token it was."""


def _scrub(text: str, token: str | None) -> str:
    text = text.replace(token, "***") if token else text
    return TOKEN_PATTERN.sub("hf_***", text)


def _repo_state(plan: PushPlan, remote: list[str] | None) -> str:
    """What a push that failed after `create_repo` leaves on the Hub: the repo exists, without its commit."""
    visibility = "private" if plan.private else "public"
    if remote is None:
        how = f"created by this push as a {visibility} repo, unless it existed before"
    elif set(remote) <= {".gitattributes"}:
        how = f"empty: created by this push as a {visibility} repo, or empty before"
    else:
        how = f"it existed before; its {len(remote)} file(s) are as they were"
    return (
        f"The repo '{plan.repo_id}' exists on the Hub ({how}) but holds no commit from this push: fix the cause "
        "and push again, or delete the repo if it is not wanted."
    )


def _hint(status: int | None, repo_id: str, created: bool) -> str:
    """What an HTTP status means for this push; a 404 blames the namespace only before the repo exists."""
    if status == 401:
        return (
            "the token was rejected (invalid, expired or revoked). Create a new token at "
            "https://huggingface.co/settings/tokens and pass it with --token, HF_TOKEN or `hf auth login`"
        )
    if status == 403:
        return (
            "the token may not write here. It needs the 'write' role (or a fine-grained token with write "
            f"access to '{repo_id.split('/')[0]}'); for an organisation repo you must be a member with "
            "write rights, and the organisation may restrict repo creation"
        )
    if status == 404 and created:
        return "the Hub did not find the repo that creating it had just returned (deleted meanwhile?)"
    if status == 404:
        return f"the namespace '{repo_id.split('/')[0]}' does not exist or this token cannot see it"
    return "the Hub refused the request"


def _explain(
    error: Exception, repo_id: str, step: str, token: str | None, repo_state: str | None = None
) -> str:
    """A message that names the repo, the failed step and what the user should check; `repo_state` says
    what the Hub holds when the step came after the repo was created (None: nothing was created)."""
    after = f"{repo_state} " if repo_state else ""
    local = f"{after}Nothing in the local folder was changed."
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        server = _scrub(str(error.server_message or error).strip(), token)
        hint = _hint(status, repo_id, repo_state is not None)
        return (
            f"{step} for dataset repo '{repo_id}' failed (HTTP {status}): {hint}. "
            f"Server said: {server}. {local}"
        )
    detail = _scrub(f"{type(error).__name__}: {error}", token)
    return (
        f"{step} for dataset repo '{repo_id}' failed: could not reach the Hugging Face Hub ({detail}). "
        f"Check the network, any proxy settings, HF_ENDPOINT and HF_HUB_OFFLINE. {local}"
    )


def _plan_files(out_dir: Path, card_bytes: bytes, data_files: list[Path]) -> tuple[PlannedFile, ...]:
    manifest = out_dir / MANIFEST_NAME
    return (
        PlannedFile(CARD_NAME, len(card_bytes)),
        PlannedFile(MANIFEST_NAME, manifest.stat().st_size),
        *(PlannedFile(p.relative_to(out_dir).as_posix(), p.stat().st_size) for p in data_files),
    )


def _check_licences(out_dir: Path, tasks: list[str], allow_unlicensed: bool) -> None:
    """Refuse to publish text whose source licence is unstated, unless the user says they may."""
    from longtasks.registry import TASKS, get_task

    unclear = [t for t in dict.fromkeys(tasks) if t in TASKS and not get_task(t).redistributable]
    if unclear and not allow_unlicensed:
        licences = ", ".join(f"{t}: {get_task(t).source_license}" for t in unclear)
        raise ValueError(
            f"{out_dir} holds {', '.join(unclear)}, whose source text has no clear licence ({licences}); "
            "publishing it may not be allowed. Push a folder without those tasks, or pass "
            "--allow-unlicensed-data (allow_unlicensed=True) if you have the right to publish it"
        )


def push(
    out_dir: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    dry_run: bool = False,
    allow_unlicensed: bool = False,
) -> PushPlan:
    """Validate `out_dir` offline, then (unless `dry_run`) create the dataset repo if needed and upload
    the card, manifest and shards in one commit. Raises `DatasetFolderError` for a folder that is not
    ready, `ValueError` for a bad repo id or for source text without a clear licence (unless
    `allow_unlicensed`), and `HubPushError` for a failed upload."""
    out_dir = Path(out_dir)
    _check_repo_id(repo_id)
    report = validate_folder(out_dir)
    _check_licences(out_dir, [e.task for e in report.configs], allow_unlicensed)
    card_text = render_card(out_dir, repo_id=repo_id)
    check_card(card_text, report.configs, where=f"the card rendered for {repo_id}")
    card_bytes = card_text.encode("utf-8")
    token, source = _token_source(token)
    plan = PushPlan(
        repo_id=repo_id,
        private=private,
        dry_run=dry_run,
        files=_plan_files(out_dir, card_bytes, report.data_files),
        configs=tuple(e.name for e in report.configs),
        rows=report.rows,
        token_source=source,
    )
    if dry_run:
        return plan
    if token is None:
        raise HubPushError(
            f"no Hugging Face token found to push to '{repo_id}': pass --token, set HF_TOKEN, or run "
            "`hf auth login` (the token needs write access)"
        )
    return _upload(out_dir, plan, card_bytes, token)


def _upload(out_dir: Path, plan: PushPlan, card_bytes: bytes, token: str) -> PushPlan:
    from dataclasses import replace

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token)
    repo_id = plan.repo_id
    step = "creating the repo"
    created, remote = False, None
    try:
        repo_url = api.create_repo(repo_id, repo_type=REPO_TYPE, private=plan.private, exist_ok=True)
        created = True
        step = "listing the repo's files"
        remote = api.list_repo_files(repo_id, repo_type=REPO_TYPE)
        uploading = {f.path_in_repo for f in plan.files}
        stale = sorted(p for p in remote if p.startswith(f"{DATA_DIR}/") and p not in uploading)
        operations = [
            CommitOperationAdd(CARD_NAME, card_bytes),
            *(CommitOperationAdd(f.path_in_repo, out_dir / f.path_in_repo) for f in plan.files[1:]),
            *(CommitOperationDelete(path) for path in stale),
        ]
        step = "uploading the files"
        commit = api.create_commit(
            repo_id,
            operations,
            repo_type=REPO_TYPE,
            commit_message=f"longtasks: {len(plan.configs)} config(s), {plan.rows} rows",
        )
    except _NETWORK_ERRORS as error:
        state = _repo_state(plan, remote) if created else None
        # `from None`: the chained error would add nothing the message lacks, and must never carry a token.
        raise HubPushError(_explain(error, repo_id, step, token, state)) from None
    commit_url = getattr(commit, "commit_url", None)
    return replace(plan, url=str(repo_url), commit_url=commit_url, deleted=tuple(stale))
