"""`sparse_eval.apply`: switch a Hugging Face model's attention to a sparse method, and back.

Integration is transformers' own attention interface: a per-session function is registered with
`AttentionInterface.register` and selected with `model.set_attn_implementation`; on exit the model's
previous implementation is restored and the registration removed (also when the body raises). Models whose
attention layers call `ALL_ATTENTION_FUNCTIONS.get_interface(...)` work: Llama, Qwen2/2.5/3, Mistral and
most decoder-only models of transformers 5.x.

Batches. transformers builds no mask for a custom attention function (`create_causal_mask` returns None
when the implementation has no entry in `AttentionMaskInterface`), so the `attention_mask` argument is
always None here and the padding of a batch cannot be seen from inside the call. Whoever pads declares it:
`with session.batch(mask):` around the forward passes, `mask` (B, L) marking each row's real prompt tokens
(one contiguous run per row: left padding for generation, right padding for loglikelihood scoring). Inside
such a block every attention call is split by row: row b's method (a fresh copy per row, so stateful
methods such as Quest and the KV methods keep one sequence's state each) sees only the row's unpadded
queries and keys, i.e. exactly the tensors of a batch-1 run, and records into the row's own report. Padded
positions are therefore never selected, never counted and never kept; padded query rows get a zero
attention output. Projections, MLPs, norms and the LM head run batched; only the attention call loops
over rows (each row one call, as at batch size 1). KV selections of the rows are combined into one
(B, Hkv, K) index tensor, each row's kept slots right-aligned after -1 padding (a left padding of the
compressed cache), and the session's `on_kv_compressed` hands each row method its own layout. Without a
declared batch, a batch of more than one sequence is refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from sparse_eval.base import BACKENDS, SparseMethod
from sparse_eval.compression import (
    PHASES,
    CompressionReport,
    CompressionShortfallWarning,
)
from sparse_eval.registry import get_method

SUPPORTED = (
    "Llama, Qwen2/2.5/3 and Mistral-style decoder models (attention routed through AttentionInterface)"
)
_counter = itertools.count()


@dataclass
class SparseSession:
    """What `apply` yields: the method in use, its compression report, and KV selections awaiting the cache.

    Attributes:
        method: the (copied) method instance that runs.
        report: per-layer, per-head achieved compression of this session.
        pending_kv: layer index -> indices (B, Hkv, keep) chosen by `select_kv` during the last prefill; the
            generation loop applies them to the cache after prefill and clears them.
        attn_name: the name registered in transformers' AttentionInterface.
        calls: attention calls served (0 after a forward means the model bypassed the interface).
    """

    method: SparseMethod
    report: CompressionReport
    pending_kv: dict[int, torch.Tensor] = field(default_factory=dict)
    attn_name: str = ""
    calls: int = 0
    rows: RowBatch | None = None

    @contextmanager
    def batch(self, mask: torch.Tensor) -> Iterator[RowBatch]:
        """Declare the padding of the batch the forward passes inside the block run on.

        `mask` (B, L), nonzero at each row's real prompt tokens: one contiguous run per row, starting at
        column 0 (right padding: prefill only, e.g. loglikelihood) or ending at column L - 1 (left padding:
        prefill and then decoding). Yields the `RowBatch` (per-row methods and reports; set
        `rows.active[b] = False` to stop attending a finished row). On exit the rows' reports are added to
        `self.report`."""
        if self.rows is not None:
            raise RuntimeError("session.batch blocks cannot be nested")
        self.rows = RowBatch.from_mask(mask, self.method)
        try:
            yield self.rows
        finally:
            rows, self.rows = self.rows, None
            for report in rows.reports:
                self.report.merge(report)

    def on_kv_compressed(self, layer_idx: int, padded_len: int) -> None:
        """`kv_cache.compress_cache` hook: tells the method (or, in a batch, each row's method) that the
        layer's cache now holds the selected tokens. Pass the session as `method` to `compress_cache`."""
        if self.rows is not None:
            self.rows.on_kv_compressed(layer_idx, padded_len)
            return
        hook = getattr(self.method, "on_kv_compressed", None)
        if hook is not None:
            hook(layer_idx, padded_len)

    def attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        """The function registered with transformers: dispatches prefill / decode / chunked calls, on the
        layer's own GPU (see `layer_device`)."""
        with layer_device(query.device):
            return self._attention(module, query, key, value, scaling, kwargs)

    def _attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        scaling: float | None,
        kwargs: dict[str, Any],
    ) -> tuple[torch.Tensor, None]:
        self.calls += 1
        _check_call(module, query, key, kwargs, batched=self.rows is not None)
        layer_idx = int(module.layer_idx)
        scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
        if self.rows is not None:
            out, keep = self.rows.attention(query, key, value, layer_idx=layer_idx, scaling=scale)
            if keep is not None:
                self.pending_kv[layer_idx] = keep
            return out.transpose(1, 2).contiguous(), None
        q_len, k_len = query.shape[-2], key.shape[-2]
        method = self.method
        if q_len == k_len:
            out = method.prefill(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "prefill"),
            )
            keep = method.select_kv(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "kv"),
            )
            if keep is not None:
                self.pending_kv[layer_idx] = keep
        elif q_len == 1:
            out = method.decode(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "decode"),
            )
        else:  # a chunk of new tokens after a cache
            out = method.extend(
                query,
                key,
                value,
                layer_idx=layer_idx,
                scaling=scale,
                stats=self.report.layer(layer_idx, "prefill"),
            )
        return out.transpose(1, 2).contiguous(), None


def layer_device(device: torch.device) -> AbstractContextManager[Any]:
    """Make a CUDA layer's device the current one while its attention runs. Triton and FlashAttention-4 launch
    on the current device and its stream, not on their tensors' device: with the layers spread over several
    GPUs (`parallelize=True`, `device_map="auto"`), a layer on cuda:1 would otherwise run its kernels on
    cuda:0's stream with cuda:1's memory. Torch ops and inductor's kernels follow their tensors anyway."""
    return torch.cuda.device(device) if device.type == "cuda" else nullcontext()


@dataclass
class RowBatch:
    """The rows of a declared batch (see the module docstring): where each row's real tokens are, its own
    method copy and report, and where its keys start in each layer's cache.

    Attributes:
        length: padded prompt length L of the prefill.
        starts, ends: row b's real prompt tokens are columns [starts[b], ends[b]) of the prefill.
        methods: one copy of the session's method per row (fresh state).
        reports: one report per row: what a batch-1 run of the row would record.
        active: rows still attended; a finished row gets a zero output and records nothing.
        offsets: layer -> per-row first cache slot of the row's keys, once a KV selection rewrote the
            layer (before that, `starts`).
    """

    length: int
    starts: list[int]
    ends: list[int]
    methods: list[SparseMethod]
    reports: list[CompressionReport]
    active: list[bool]
    offsets: dict[int, list[int]] = field(default_factory=dict)
    _kept_lengths: dict[int, dict[int, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_mask(cls, mask: torch.Tensor, method: SparseMethod) -> RowBatch:
        mask = torch.as_tensor(mask, device=mask.device if isinstance(mask, torch.Tensor) else "cpu")
        if mask.dim() != 2 or mask.shape[0] < 1 or mask.shape[1] < 1:
            raise ValueError(f"batch mask must have shape (batch, length), got {tuple(mask.shape)}")
        real = mask.detach().to("cpu", torch.bool)
        length = real.shape[1]
        counts = real.sum(-1)
        first = torch.where(counts > 0, real.int().argmax(-1), 0)
        starts, ends = first.tolist(), (first + counts).tolist()
        for b, (s, e) in enumerate(zip(starts, ends, strict=True)):
            if e <= s:
                raise ValueError(f"batch row {b} has no real token: every row needs a prompt")
            if not bool(real[b, s:e].all()) or (s > 0 and e < length):
                raise ValueError(
                    f"batch row {b}: real tokens must be one run at the start (right padding) or at the end "
                    f"(left padding) of the row, got columns {real[b].nonzero().flatten().tolist()}"
                )
        return cls(
            length=length,
            starts=starts,
            ends=ends,
            methods=[dataclasses.replace(method) for _ in starts],
            reports=[
                CompressionReport(method=method.name, target_compression=method.compression) for _ in starts
            ],
            active=[True] * len(starts),
        )

    def attention(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, layer_idx: int, scaling: float
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One attention call, row by row on each row's unpadded slice: (output (B, Hq, Lq, D), combined KV
        selection (B, Hkv, K) with -1 padding, or None)."""
        batch, q_heads, q_len, _ = query.shape
        k_len = key.shape[-2]
        if batch != len(self.starts):
            raise ValueError(f"the declared batch has {len(self.starts)} rows, the forward pass {batch}")
        prefill = q_len == k_len
        if prefill and k_len != self.length:
            raise ValueError(f"prefill of {k_len} tokens in a batch declared for {self.length}")
        out = query.new_zeros(batch, q_heads, q_len, value.shape[-1])
        kept: dict[int, torch.Tensor] = {}
        for b in range(batch):
            if not self.active[b]:
                continue
            method, report = self.methods[b], self.reports[b]
            if prefill:
                s, e = self.starts[b], self.ends[b]
                q, k, v = query[b : b + 1, :, s:e], key[b : b + 1, :, s:e], value[b : b + 1, :, s:e]
                stats = report.layer(layer_idx, "prefill")
                out[b : b + 1, :, s:e] = method.prefill(
                    q, k, v, layer_idx=layer_idx, scaling=scaling, stats=stats
                )
                keep = method.select_kv(
                    q, k, v, layer_idx=layer_idx, scaling=scaling, stats=report.layer(layer_idx, "kv")
                )
                if keep is not None:
                    kept[b] = keep
                continue
            if self.ends[b] != self.length:
                raise NotImplementedError(
                    f"batch row {b} is right-padded: such rows can be prefilled (scored) only; left-pad "
                    "prompts to decode after them"
                )
            first = self.offsets.get(layer_idx, self.starts)[b]
            q, k, v = query[b : b + 1], key[b : b + 1, :, first:], value[b : b + 1, :, first:]
            if q_len == 1:
                stats = report.layer(layer_idx, "decode")
                out[b : b + 1] = method.decode(q, k, v, layer_idx=layer_idx, scaling=scaling, stats=stats)
            else:  # a chunk of new tokens after a cache
                stats = report.layer(layer_idx, "prefill")
                out[b : b + 1] = method.extend(q, k, v, layer_idx=layer_idx, scaling=scaling, stats=stats)
        return out, self._combine(layer_idx, kept, key) if kept else None

    def _combine(self, layer_idx: int, kept: dict[int, torch.Tensor], key: torch.Tensor) -> torch.Tensor:
        """Rows' selections (1, Hkv, k_b) in row coordinates -> (B, Hkv, K) cache slots, each row's slots
        right-aligned after K - k_b slots of -1 (a row that selected nothing keeps all its tokens)."""
        rows = []
        for b in range(len(self.starts)):
            s, e = self.starts[b], self.ends[b]
            idx = kept.get(b)
            if idx is None:
                idx = torch.arange(e - s, device=key.device).expand(1, key.shape[1], e - s)
            rows.append(torch.where(idx >= 0, idx + s, idx))
        width = max(r.shape[-1] for r in rows)
        self._kept_lengths[layer_idx] = {b: rows[b].shape[-1] for b in kept}
        pad = [
            torch.full((1, key.shape[1], width - r.shape[-1]), -1, dtype=r.dtype, device=r.device)
            for r in rows
        ]
        return torch.cat([torch.cat([p, r], dim=-1) for p, r in zip(pad, rows, strict=True)], dim=0)

    def on_kv_compressed(self, layer_idx: int, padded_len: int) -> None:
        """The layer's cache now holds the combined selection: row b's keys start at padded_len - k_b."""
        lengths = self._kept_lengths.pop(layer_idx, None)
        if lengths is None:
            raise RuntimeError(
                f"layer {layer_idx} was compressed without a selection from this batch's prefill"
            )
        widths = [lengths.get(b, self.ends[b] - self.starts[b]) for b in range(len(self.starts))]
        self.offsets[layer_idx] = [padded_len - w for w in widths]
        for b, width in lengths.items():
            hook = getattr(self.methods[b], "on_kv_compressed", None)
            if hook is not None:
                hook(layer_idx, width)


def _check_call(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    kwargs: dict[str, Any],
    *,
    batched: bool = False,
) -> None:
    if query.shape[0] != 1 and not batched:
        raise ValueError(
            f"sparse_eval got a batch of {query.shape[0]} sequences without a padding layout (transformers "
            "passes no padding mask to custom attention): generate with sparse_eval.generate(model, [prompts]) "
            "or declare the padding with `with session.batch(attention_mask):` around the forward pass"
        )
    if getattr(module, "layer_idx", None) is None:
        raise TypeError(f"{type(module).__name__} has no layer_idx; sparse_eval needs it to track layers")
    if not getattr(module, "is_causal", True):
        raise TypeError(
            f"{type(module).__name__} is not causal self-attention; sparse_eval supports {SUPPORTED}"
        )
    window = kwargs.get("sliding_window")
    if window is not None:
        # A sliding-window cache drops old keys, so k_len never exceeds the window: look at the positions.
        positions = kwargs.get("position_ids")
        seen = key.shape[-2] if positions is None else max(key.shape[-2], int(positions.max()) + 1)
        if seen > window:
            raise NotImplementedError(
                f"sliding-window attention (window {window} < {seen} positions) is not supported; "
                f"sparse_eval supports full causal attention ({SUPPORTED})"
            )
    for unsupported in ("softcap", "s_aux"):
        if kwargs.get(unsupported) is not None:
            raise NotImplementedError(
                f"attention with {unsupported!r} is not supported; it supports {SUPPORTED}"
            )


def _resolve_method(
    method: str | SparseMethod, compression: float | None, backend: str | None, kwargs: Any
) -> SparseMethod:
    if backend is None:  # keep an instance's own backend; names get the automatic choice
        backend = method.backend if isinstance(method, SparseMethod) else "auto"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(method, SparseMethod):
        changes = dict(kwargs)
        if compression is not None:
            changes["compression"] = compression
        valid = {f.name for f in dataclasses.fields(method) if f.init}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise TypeError(f"method {method.name!r} has no argument(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(method, backend=backend, **changes)
    if isinstance(method, str):
        if compression is not None:
            kwargs = {**kwargs, "compression": compression}
        return get_method(method, backend=backend, **kwargs)
    raise TypeError(f"method must be a method name or a SparseMethod instance, got {type(method).__name__}")


def _check_model(model: Any) -> None:
    name = type(model).__name__
    if not hasattr(model, "set_attn_implementation") or not hasattr(model, "config"):
        raise TypeError(
            f"{name} is not a transformers PreTrainedModel with set_attn_implementation; sparse_eval.apply "
            f"works with {SUPPORTED}"
        )
    can_set = getattr(type(model), "_can_set_attn_implementation", None)
    if can_set is not None and not can_set():
        raise TypeError(
            f"{name} does not route its attention through transformers' AttentionInterface, so it cannot be "
            f"patched; sparse_eval.apply works with {SUPPORTED}"
        )
    if not any(getattr(m, "layer_idx", None) is not None for m in model.modules()):
        raise TypeError(
            f"{name} has no attention layers with layer_idx; sparse_eval.apply works with {SUPPORTED}"
        )


@contextmanager
def apply(
    model: Any,
    method: str | SparseMethod,
    compression: float | None = None,
    backend: str | None = None,
    **method_kwargs: Any,
) -> Iterator[SparseSession]:
    """Run `model` with a sparse attention method inside the `with` block.

    `method` is a registered name (see `list_methods()`) or a method instance (copied, never mutated);
    `compression` and `method_kwargs` set its fields; `backend` is "auto" (FlexAttention on CUDA, reference
    elsewhere), "reference" or "flex" (None: the instance's own, or "auto" for a name). Yields a `SparseSession` whose `.report` holds the achieved compression.
    """
    chosen = _resolve_method(method, compression, backend, method_kwargs)
    _check_model(model)
    from transformers import AttentionInterface

    session = SparseSession(
        method=chosen,
        report=CompressionReport(method=chosen.name, target_compression=chosen.compression),
        attn_name=f"sparse_eval_{chosen.name}_{next(_counter)}",
    )
    previous = model.config._attn_implementation
    AttentionInterface.register(session.attn_name, session.attention)
    try:
        model.set_attn_implementation(session.attn_name)
        if model.config._attn_implementation != session.attn_name:
            raise TypeError(
                f"{type(model).__name__} refused the attention implementation switch (it does not use "
                f"AttentionInterface); sparse_eval.apply works with {SUPPORTED}"
            )
        yield session
        shortfall = session.report.shortfall(chosen.phase) if chosen.phase in PHASES else None
        if shortfall:
            warnings.warn(shortfall, CompressionShortfallWarning, stacklevel=3)
        if session.pending_kv:
            warnings.warn(
                f"{chosen.name} selected KV entries to keep for {len(session.pending_kv)} layer(s) but no cache "
                "was compressed, so decoding (if any) ran on the full cache and the report's 'kv' phase did not "
                "happen; generate with sparse_eval.generate, or apply "
                "sparse_eval.compress_cache(cache, session.pending_kv, session) after the prefill",
                RuntimeWarning,
                stacklevel=3,
            )
    finally:
        try:
            if model.config._attn_implementation != previous:
                model.set_attn_implementation(previous)
        finally:
            AttentionInterface._global_mapping.pop(session.attn_name, None)
