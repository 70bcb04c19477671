"""Audit 3 of the Hub / lm-eval path: `task_manager` reads every static sample unless told otherwise, the
request check counts in the run's tokenizer when the data names one that only resolves where it was made,
a push that fails after creating the repo says so, a broken token from HF_TOKEN or the login cache is refused
without echo, and a card only suggests a group whose tasks hold the same lengths."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import huggingface_hub
import pyarrow.parquet as pq
import pytest
from _hub_folder import make_folder
from _trained_tokenizers import train_tokenizer
from huggingface_hub.errors import HfHubHTTPError

from longtasks.hub import HubPushError, push, render_card, write_card
from longtasks.hub.card import lm_eval_task_names
from longtasks.lm_eval_tasks.guarded_task import GuardedTask, RequestGuardError, _tokenizer
from longtasks.lm_eval_tasks.options import DEFAULT_NUM_SAMPLES, generation_options, static_options
from longtasks.tokenizer import load_tokenizer

REPO = "someone/longtasks-test"
FAKE_TOKEN = "hf_FAKEtokenDoNotLeak0123456789abcdefXYZ"


# 1. task_manager(data_path=...) reads every sample the folder holds


@pytest.fixture(scope="module")
def three_rows(tmp_path_factory) -> Path:
    from longtasks.dataset_dir import generate_to_dir

    out = tmp_path_factory.mktemp("three") / "data"
    generate_to_dir(out, ["ruler_niah"], [1024], num_samples=3, progress=False)
    return out


def test_task_manager_leaves_num_samples_out_unless_given(three_rows: Path) -> None:
    from longtasks.lm_eval_tasks.dataset import static
    from longtasks.lm_eval_tasks.manager import task_manager
    from longtasks.registry import list_tasks

    metadata = task_manager([1024], data_path=str(three_rows), include_defaults=False).metadata
    assert "num_samples" not in metadata
    assert static_options("ruler_niah", metadata).num_samples is None
    # a folder of 3 rows was refused ("fewer than num_samples=100"); one of 130 was cut to 100
    assert len(static(**metadata, longtasks_task="ruler_niah")["test"]) == 3
    # the generated variants still make the documented default, and an explicit value still travels
    assert generation_options("ruler_niah", metadata, list_tasks()).num_samples == DEFAULT_NUM_SAMPLES
    given = task_manager([1024], data_path=str(three_rows), num_samples=2, include_defaults=False).metadata
    assert len(static(**given, longtasks_task="ruler_niah")["test"]) == 2


# 2. the request check and the static loader with a tokenizer named by a relative folder


@pytest.fixture(scope="module")
def relative_tokenizer_data(tmp_path_factory) -> tuple[Path, Path]:
    """(data, tokenizer folder): data generated from inside its parent folder with `--tokenizer tok`, so its
    `tokenizer` column says 'tok', which resolves nowhere else."""
    from longtasks.dataset_dir import generate_to_dir

    root = tmp_path_factory.mktemp("made_here")
    corpus = [
        "The quick brown fox jumps over the lazy dog. One of the special magic numbers for key-value is: "
        "1234567. What is the special magic number? Answer <answer> </answer>"
    ] * 50
    train_tokenizer("bytelevel_bpe", corpus, vocab_size=400).hf.save_pretrained(root / "tok")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        generate_to_dir(root / "data", ["ruler_niah"], [4096], num_samples=2, tokenizer="tok", progress=False)
    load_tokenizer.cache_clear()  # 'tok' loaded from `root`; elsewhere it must not resolve
    _tokenizer.cache_clear()
    return root / "data", root / "tok"


def _docs(data: Path) -> list[dict]:
    return [row for f in sorted(data.rglob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def _check(doc: dict, metadata: dict) -> None:
    """GuardedTask's check of one request, as lm-eval calls it, on a task configured by `metadata`."""
    config = SimpleNamespace(
        task="ruler_niah_static", metadata=metadata, generation_kwargs={"max_gen_toks": 512}
    )
    GuardedTask._check(SimpleNamespace(config=config), doc, doc["prompt"])


def test_the_check_counts_in_the_models_tokenizer_when_the_data_names_a_relative_folder(
    relative_tokenizer_data, tmp_path: Path, monkeypatch, caplog
) -> None:
    from longtasks.lm_eval_tasks.dataset import static

    data, tok = relative_tokenizer_data
    monkeypatch.chdir(tmp_path)
    docs = _docs(data)
    assert {doc["tokenizer"] for doc in docs} == {"tok"}
    for doc in docs:  # was: "cannot load a tokenizer from 'tok' (no local folder of that name exists)"
        _check(doc, {"pretrained": str(tok), "data_path": str(data)})
    with caplog.at_level(logging.WARNING):
        rows = static(data_path=str(data), pretrained=str(tok), longtasks_task="ruler_niah", gen_budget=512)
    assert len(rows["test"]) == 2
    assert "lengths are exact in the dataset's tokenizer only" not in caplog.text  # same files, other name


def test_an_unloadable_data_tokenizer_says_where_the_name_came_from(
    relative_tokenizer_data, tmp_path: Path, monkeypatch
) -> None:
    from longtasks.lm_eval_tasks.dataset import static

    data, _ = relative_tokenizer_data
    monkeypatch.chdir(tmp_path)
    doc = _docs(data)[0]
    wanted = r"'tok' named in the dataset's `tokenizer` column .* --model_args pretrained=PATH"
    with pytest.raises(ValueError, match=wanted):
        _check(doc, {"data_path": str(data)})
    with pytest.raises(ValueError, match=wanted):
        static(data_path=str(data), longtasks_task="ruler_niah", gen_budget=512)
    # another tokenizer stands in only as far as it counts the same: otherwise it is named, not chat mode
    with pytest.raises(
        RequestGuardError, match=r"counted in the run's tokenizer 'qwen2.5' because the data's"
    ):
        _check(doc, {"tokenizer": "qwen2.5"})


# 4 and 5. push: a failure after the repo was created, and a broken token from the environment


class FakeApi:
    """Stands in for HfApi (no network): `fail` maps a method name to the exception it raises."""

    fail: ClassVar[dict[str, Exception]] = {}
    remote_files: ClassVar[list[str]] = []
    created: ClassVar[int] = 0

    def __init__(self, token=None, **kwargs):
        self.token = token

    def _maybe_fail(self, name: str) -> None:
        if name in FakeApi.fail:
            raise FakeApi.fail[name]

    def create_repo(self, repo_id, **kwargs):
        self._maybe_fail("create_repo")
        FakeApi.created += 1
        return f"https://huggingface.co/datasets/{repo_id}"

    def list_repo_files(self, repo_id, **kwargs):
        self._maybe_fail("list_repo_files")
        return list(FakeApi.remote_files)

    def create_commit(self, repo_id, operations, **kwargs):
        self._maybe_fail("create_commit")
        return SimpleNamespace(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/abc")


@pytest.fixture
def fake_api(monkeypatch):
    FakeApi.fail, FakeApi.remote_files, FakeApi.created = {}, [], 0
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return FakeApi


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    make_folder(out)
    write_card(out)
    return out


def _http_error(status: int) -> HfHubHTTPError:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(f"{status} error", response=response, server_message="Repository not found")


@pytest.mark.parametrize(
    ("step", "remote", "state"),
    [
        (
            "create_commit",
            [".gitattributes"],
            "empty: created by this push as a public repo, or empty before",
        ),
        (
            "create_commit",
            ["README.md", "longtasks.json"],
            "it existed before; its 2 file(s) are as they were",
        ),
        ("list_repo_files", [], "created by this push as a public repo, unless it existed before"),
    ],
)
def test_a_failure_after_creating_the_repo_says_the_repo_exists(
    folder: Path, fake_api, step: str, remote: list[str], state: str
) -> None:
    fake_api.fail = {step: _http_error(404)}
    fake_api.remote_files = remote
    with pytest.raises(HubPushError) as caught:
        push(folder, REPO)
    message = str(caught.value)
    assert fake_api.created == 1
    assert f"The repo '{REPO}' exists on the Hub ({state}) but holds no commit from this push" in message
    assert "namespace" not in message  # creating it in that namespace had just worked
    assert "Nothing in the local folder was changed" in message


def test_a_failure_creating_the_repo_still_blames_the_namespace(folder: Path, fake_api) -> None:
    fake_api.fail = {"create_repo": _http_error(404)}
    with pytest.raises(HubPushError) as caught:
        push(folder, REPO)
    assert "the namespace 'someone' does not exist" in str(caught.value)
    assert "exists on the Hub" not in str(caught.value)


@pytest.mark.parametrize(
    ("in_environment", "where"),
    [(True, "the HF_TOKEN environment variable"), (False, "the token in the Hugging Face login cache")],
)
def test_a_broken_token_from_the_environment_or_login_cache_is_refused_without_echo(
    folder: Path, fake_api, monkeypatch, in_environment: bool, where: str
) -> None:
    broken = f"{FAKE_TOKEN}é"  # sent as is, the HTTP layer fails with "'ascii' codec can't encode"
    if in_environment:
        monkeypatch.setenv("HF_TOKEN", broken)
    else:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: broken)
    with pytest.raises(ValueError, match=f"{where} holds a space, control or non-ASCII character") as caught:
        push(folder, REPO)
    assert FAKE_TOKEN[:10] not in str(caught.value)
    assert fake_api.created == 0


# 6. the card suggests a group only when its tasks hold the same lengths


def test_lm_eval_names_with_different_lengths_per_task() -> None:
    ruler = ["ruler_niah", "ruler_vt", "ruler_cwe"]
    same = {task: {3072, 4096} for task in ruler}
    assert lm_eval_task_names(ruler, same) == "longtasks_ruler_static"
    assert lm_eval_task_names(ruler) == "longtasks_ruler_static"
    differ = {**same, "ruler_niah": {2048, 3072, 4096}}
    assert lm_eval_task_names(ruler, differ) == "ruler_niah_static,ruler_vt_static,ruler_cwe_static"


def test_card_of_a_folder_whose_tasks_hold_different_lengths(tmp_path: Path) -> None:
    ruler = ("ruler_niah", "ruler_vt", "ruler_cwe")
    out, extra = tmp_path / "out", tmp_path / "extra"
    manifest = make_folder(out, tasks=ruler, lengths=(3072, 4096), num_samples=2)
    assert "--tasks longtasks_ruler_static" in render_card(out)
    manifest["configs"].update(
        make_folder(extra, tasks=("ruler_niah",), lengths=(2048,), num_samples=2)["configs"]
    )
    shutil.copytree(extra / "data", out / "data", dirs_exist_ok=True)
    (out / "longtasks.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    assert "--tasks ruler_niah_static,ruler_vt_static,ruler_cwe_static" in render_card(out)
