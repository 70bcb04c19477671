"""The Triton last-query kernel against the torch path of `estimation.vertical_slash_scores`, and the dispatch.

Inputs are small integers and the scale a power of two, so every score is exact in bf16 whatever the
matmul's summation order. Both paths then round each probability once to bf16 (at most 2^-8 relative;
the kernel stores 2^(s - block max) in bf16 and rescales in float32, torch rounds the softmax output), and
the sums are of non-negative terms, so each sum is within 2^-8 (plus float32 summation) of the float64
softmax sums, and the paths within 2 * 2^-8 of each other (vertical and slash: both sum in float32). The kernel runs on
CUDA where there is a GPU, else on CPU tensors through triton's interpreter; those tests skip where triton
is not installed (CI) or its interpreter does not run. The dispatch tests always run.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest
import torch

from sparse_eval.methods import estimation
from sparse_eval.methods.estimation import vertical_slash_scores
from tests.sparse.triton_kernels import kernel_module

NAME = "sparse_eval.kernels.last_query"
RTOL_EXACT = 2.0**-8 + 1e-5  # one bf16 rounding of each probability (module docstring)
RTOL_V = RTOL_S = 2 * 2.0**-8  # against torch: its bf16 rounding of each probability too
ATOL = 1e-6  # float32 summation order on sums of at most a few hundred terms


@pytest.fixture(scope="module")
def kernel() -> Iterator[ModuleType]:
    x = torch.ones(1, 1, 2, 16, dtype=torch.bfloat16)
    yield from kernel_module(NAME, lambda m: m.vertical_slash(x, x, 1.0, 1))


@pytest.fixture(scope="module")
def device(kernel) -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def integer_qk(B: int, hq: int, hkv: int, L: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-1, 2, (B, hq, L, d), generator=g).to(torch.bfloat16)
    k = torch.randint(-1, 2, (B, hkv, L, d), generator=g).to(torch.bfloat16)
    return q, k


def exact_sums(q: torch.Tensor, k: torch.Tensor, scaling: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition in float64: column sums and diagonal sums (o = query - key) of the causal softmax."""
    L = q.shape[-2]
    n = min(n, L)
    k = k.double().repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q[..., L - n :, :].double() * scaling) @ k.transpose(-1, -2)
    pos = torch.arange(L - n, L)[:, None]
    keys = torch.arange(L)[None, :]
    probs = scores.masked_fill(keys > pos, float("-inf")).softmax(-1)
    offsets = (pos - keys).clamp(min=0).expand(n, L)
    slash = torch.zeros(*probs.shape[:2], L, dtype=torch.float64)
    slash.scatter_add_(-1, offsets.reshape(1, 1, -1).expand(*probs.shape[:2], -1), probs.flatten(-2))
    return probs.sum(-2), slash


def assert_matches(kernel: ModuleType, q: torch.Tensor, k: torch.Tensor, scaling: float, n: int) -> None:
    vertical, slash = (x.cpu() for x in kernel.vertical_slash(q, k, scaling, n))
    exact_v, exact_s = exact_sums(q.cpu(), k.cpu(), scaling, n)
    torch.testing.assert_close(vertical.double(), exact_v, rtol=RTOL_EXACT, atol=1e-7)
    torch.testing.assert_close(slash.double(), exact_s, rtol=RTOL_EXACT, atol=1e-7)
    ref_v, ref_s = vertical_slash_scores(q.cpu(), k.cpu(), scaling, n)  # CPU tensors: the torch path
    torch.testing.assert_close(vertical, ref_v, rtol=RTOL_V, atol=ATOL)
    torch.testing.assert_close(slash, ref_s, rtol=RTOL_S, atol=ATOL)
    rows = min(n, q.shape[-2])
    total = torch.full_like(ref_v[..., 0], float(rows))  # every row's probabilities sum to 1
    torch.testing.assert_close(vertical.sum(-1), total, rtol=RTOL_EXACT, atol=0)
    torch.testing.assert_close(slash.sum(-1), total, rtol=RTOL_EXACT, atol=0)


@pytest.mark.parametrize(
    ("B", "hq", "hkv", "L", "d", "n"),
    [
        (1, 2, 2, 200, 64, 16),  # L not a multiple of the 128-key blocks, one query head per KV head
        (2, 7, 1, 150, 32, 40),  # B = 2, GQA group of 7: rows of one tile span several heads
        (1, 2, 1, 50, 64, 64),  # n > L: every query
        (1, 4, 2, 131, 64, 1),  # n = 1
        (1, 2, 1, 1, 16, 4),  # a single token
        (1, 2, 1, 1100, 128, 8),  # several stretches of key blocks: their partial softmax sums combine
    ],
)
def test_kernel_matches_torch(kernel, device, B, hq, hkv, L, d, n) -> None:
    q, k = integer_qk(B, hq, hkv, L, d, seed=L + n)
    assert_matches(kernel, q.to(device), k.to(device), 0.125, n)


def test_row_statistics_merge_across_row_scale_blocks(kernel, device, monkeypatch) -> None:
    """Rows longer than one `_row_scale` step (> 16k tokens at the shipped size) combine their maxima and sums
    online; a 2-block step makes a 1100-token row take that path (18 key blocks)."""
    monkeypatch.setattr(kernel, "ROW_SCALE_BLOCK", 2)
    q, k = integer_qk(1, 4, 2, 1100, 64, seed=9)
    assert_matches(kernel, q.to(device), k.to(device), 0.125, 40)


def test_concentrated_rows(kernel, device) -> None:
    """Rows dominated by one key with score 128: exp without the row max would overflow float32."""
    L, n = 300, 24
    q, k = integer_qk(1, 2, 1, L, 64, seed=3)
    q[..., L - n :, :] = torch.where(q[..., L - n :, :] >= 0, 1.0, -1.0).to(q.dtype)
    k[0, 0, 37] = q[0, 0, -1]  # head 0's last query meets key 37 with score 2 * 64
    k[0, 0, 250] = q[0, 1, -5]  # head 1's query at L - 5 meets key 250 likewise
    vertical, _ = kernel.vertical_slash(q.to(device), k.to(device), 2.0, n)
    assert vertical[0, 0, 37] > 0.99 and vertical[0, 1, 250] > 0.99
    assert_matches(kernel, q.to(device), k.to(device), 2.0, n)


def test_supports(kernel) -> None:
    q = torch.zeros(1, 4, 8, 64, dtype=torch.bfloat16)
    k = torch.zeros(1, 2, 8, 64, dtype=torch.bfloat16)
    assert kernel.supports(q, k)
    assert not kernel.supports(q.float(), k.float())  # float32 inputs: torch path
    assert not kernel.supports(q[..., :48], k[..., :48])  # head dim 48: torch path
    assert not kernel.supports(q[:, :3], k)  # 3 heads over 2 KV heads


def _fake(result: object = None, error: BaseException | None = None) -> SimpleNamespace:
    calls = []

    def vertical_slash(*args: object) -> object:
        calls.append(args)
        if error is not None:
            raise error
        return result

    return SimpleNamespace(vertical_slash=vertical_slash, calls=calls)


def test_dispatch_takes_the_kernel(monkeypatch) -> None:
    fake = _fake(result="kernel")
    monkeypatch.setattr(estimation, "kernel_for", lambda q, k: fake)
    monkeypatch.setattr(estimation, "_kernel_failed", False)
    q = torch.zeros(1, 2, 4, 16)
    assert vertical_slash_scores(q, q[:, :1], 0.5, 3) == "kernel"
    assert fake.calls[0][2:] == (0.5, 3)


def test_kernel_failure_warns_once_then_torch(monkeypatch) -> None:
    fake = _fake(error=RuntimeError("no compiler for this GPU"))
    monkeypatch.setattr(estimation, "kernel_for", lambda q, k: fake)
    monkeypatch.setattr(estimation, "_kernel_failed", False)
    q, k = integer_qk(1, 2, 1, 20, 16, seed=0)
    monkeypatch.setattr(estimation, "_kernel_failed", True)
    expected = vertical_slash_scores(q, k, 0.25, 5)  # the torch path
    monkeypatch.setattr(estimation, "_kernel_failed", False)
    with pytest.warns(RuntimeWarning, match="no compiler for this GPU"):
        got = vertical_slash_scores(q, k, 0.25, 5)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(vertical_slash_scores(q, k, 0.25, 5), expected, rtol=0, atol=0)
    assert len(fake.calls) == 1


def test_out_of_memory_is_not_a_kernel_failure(monkeypatch) -> None:
    fake = _fake(error=torch.cuda.OutOfMemoryError("CUDA out of memory"))
    monkeypatch.setattr(estimation, "kernel_for", lambda q, k: fake)
    monkeypatch.setattr(estimation, "_kernel_failed", False)
    q = torch.zeros(1, 2, 4, 16)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        vertical_slash_scores(q, q[:, :1], 0.5, 3)
    assert not estimation._kernel_failed


def test_kernel_only_on_cuda(monkeypatch) -> None:
    q = torch.zeros(1, 2, 4, 64, dtype=torch.bfloat16)
    assert estimation.kernel_for(q, q) is None  # CPU tensors: torch path
    monkeypatch.setenv(estimation.ENV, "off")
    if torch.cuda.is_available():
        assert estimation.kernel_for(q.cuda(), q.cuda()) is None
