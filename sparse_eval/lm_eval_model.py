"""lm-eval model type `sparse-hf`: Hugging Face causal LMs evaluated under a sparse attention method.

    lm_eval --model sparse-hf \\
        --model_args pretrained=Qwen/Qwen2.5-7B-Instruct,method=snapkv,compression=10,window=256 ...

(through the project's wrapper command, since the lm-eval CLI cannot import plugins). Every argument that
names a field of the chosen method (`compression`, `window`, `page_size`, ...) configures the method;
`sparse_backend` picks its kernels ("auto", "reference", "flex"; HFLM's own `backend` keeps its meaning);
everything else goes to `HFLM`.

- generate_until: greedy decoding through `sparse_eval.generation` (prefill under the method, KV
  compression after prefill, decoding at the original positions). Sampling is refused.
- loglikelihood / loglikelihood_rolling: one forward pass per request. Prefill methods run under the method;
  decode and KV methods change only generation, so their loglikelihoods are dense.
- `batch_size=N`: generation runs N left-padded prompts per batch through `sparse_eval.generate`, and
  loglikelihood scores N right-padded requests per forward pass; either way the padding is declared to the
  session (`SparseSession.batch`), each row's attention runs on its unpadded slice with its own copy of the
  method, everything else runs batched, and results equal batch size 1 (greedy). HFLM does not hand the
  lengths of its right-padded loglikelihood rows to `_model_call`, so they are read where HFLM pads them
  (its `pad_and_concat`); a batch whose lengths cannot be known is refused. `batch_size=auto` is refused:
  lm-eval's detection times the dense model at max_length, which says nothing about a sparse method.
- Contexts longer than `max_length - max_gen_toks` (generation) or `max_length` (loglikelihood) raise instead
  of being silently left-truncated; generation kwargs that greedy decoding cannot honour raise too.
- Data parallel (`accelerate launch ... longtasks eval --model sparse-hf ...`): one whole model per process,
  each process runs its share of the requests. HFLM splits the requests only when it sees more than one GPU;
  sparse-hf splits them whenever accelerate started several processes (CPU processes, or several processes
  on one GPU, included); otherwise every process would evaluate every document (only the one with LOCAL_RANK
  0 writes results, so the others' work would be wasted). lm-eval pads every process's request list to the
  longest one with copies of its last request (and HFLM pads rolling loglikelihood windows the same way);
  those copies are not run again (their results are copied) and are never counted in the compression
  report, and the reports of all processes are gathered after every request type, so
  `config.sparse_compression` covers every request, not rank 0's share.

`lm.report` accumulates the achieved compression over all requests (per phase, layer and head) and
`lm.reports_by_length` per prompt length; `lm.report.to_dict()` is JSON-ready. The requested and achieved
compression (overall and per prompt length, with the number of requests measured at each length) are added
to lm-eval's results under `config.sparse_compression`, and a shortfall far below the request is warned about
once, at the end, instead of once per request.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import lm_eval.models.huggingface as _hf
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from sparse_eval.base import SparseMethod
from sparse_eval.compression import PHASES, CompressionReport, CompressionShortfallWarning
from sparse_eval.generation import generate
from sparse_eval.patch import apply
from sparse_eval.registry import get_method, list_methods, method_class


def _coerce(name: str, value: Any, default: Any, annotation: str = "") -> Any:
    """Method arguments arrive as strings from `--model_args` when lm-eval could not infer a type: convert
    them to the type of the field's default (bool, int or float), or for a field whose default is None to the
    type its annotation names (`gamma: float | None`; "none" gives None)."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    kind: type | None = type(default) if default is not None else None
    if kind is None:
        named = {part.strip() for part in str(annotation).split("|")}
        kind = next((t for t in (bool, int, float) if t.__name__ in named), None)
        if kind is None:
            return value
        if text.lower() in ("none", "null"):
            return None
    try:
        if kind is bool:
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise ValueError(text)
        if kind in (int, float):
            return kind(text)
    except ValueError:
        raise ValueError(f"method argument {name}={value!r} is not a valid {kind.__name__}") from None
    return value


def method_from_args(method: str, compression: Any, backend: str, args: dict[str, Any]) -> SparseMethod:
    """Build the method from `--model_args`, taking (and removing from `args`) the keys that are its fields."""
    cls = method_class(method)
    fields = {
        f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in ("compression", "backend")
    }
    chosen = {}
    for name in [k for k in args if k in fields]:
        field = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else None
        chosen[name] = _coerce(name, args.pop(name), default, str(field.type))
    return get_method(method, compression=_coerce("compression", compression, 1.0), backend=backend, **chosen)


def _method_fields(cls: type[SparseMethod]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _check_batch_size(batch_size: Any) -> None:
    text = str(batch_size).strip()
    if text.startswith("auto"):
        raise ValueError(
            f"sparse-hf needs a fixed batch_size, e.g. batch_size=8 (got {batch_size!r}): lm-eval's automatic "
            "detection runs the dense model at max_length, which does not measure a sparse method"
        )
    if not text.isdigit() or int(text) < 1:
        raise ValueError(
            f"sparse-hf batch_size must be a positive integer, e.g. batch_size=8 (got {batch_size!r})"
        )


def sparse_args(model_args: dict[str, Any]) -> SparseMethod:
    """The method `--model_args` ask for, with its fields taken out of `model_args`; a ValueError naming the
    bad value and what is valid for an unknown method, a bad compression, backend or field value, a field of
    another method (which HFLM would hand to the model's constructor) and a batch size that is not a positive
    integer (`auto` included)."""
    name = str(model_args.pop("method", "dense"))
    if name not in list_methods():
        raise ValueError(
            f"unknown sparse method {name!r} in --model_args; available: {', '.join(list_methods())}"
        )
    compression = model_args.pop("compression", 1.0)
    backend = str(model_args.pop("sparse_backend", "auto"))
    try:
        method = method_from_args(name, compression, backend, model_args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"sparse-hf method={name}: {error}") from None
    own = _method_fields(type(method))
    other_fields = set().union(*(_method_fields(method_class(m)) for m in list_methods())) - {"backend"}
    foreign = sorted(key for key in model_args if key in other_fields)  # HFLM's own `backend` is not one
    if foreign:
        raise ValueError(
            f"sparse-hf method={name} has no argument(s) {', '.join(foreign)} (they belong to other methods); "
            f"{name}'s arguments: {', '.join(sorted(own - {'backend'})) or 'none'}, plus sparse_backend"
        )
    _check_batch_size(model_args.get("batch_size", 1))
    return method


log = logging.getLogger(__name__)


@contextmanager
def _quiet_shortfall() -> Iterator[None]:
    """Silence the per-request shortfall warning; the model reports it once over all requests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompressionShortfallWarning)
        yield


SAMPLING_ONLY = frozenset({"top_k", "top_p", "typical_p", "min_p"})
"""Generation kwargs that only matter when sampling, so greedy decoding may ignore them."""
GREEDY_NEUTRAL = {"num_beams": 1, "repetition_penalty": 1.0, "use_cache": True, "num_return_sequences": 1}
"""Generation kwargs whose value here changes nothing in greedy decoding."""


def split_padding(requests: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """(the requests without lm-eval's data-parallel padding, the index into them of every original entry).

    lm-eval pads a process's request list by appending its last request again, `repeats` times per copy: an
    Instance listed more often than its `repeats` is such a copy and maps to one of its earlier entries."""
    real: list[Any] = []
    where: list[int] = []
    seen: dict[int, list[int]] = {}
    listed: dict[int, int] = {}
    for request in requests:
        positions = seen.setdefault(id(request), [])
        repeats = max(1, int(getattr(request, "repeats", None) or 1))
        if len(positions) < repeats:
            positions.append(len(real))
            real.append(request)
        n = listed.get(id(request), 0)
        listed[id(request)] = n + 1
        where.append(positions[n % repeats])
    return real, where


def portable_report(report: CompressionReport) -> CompressionReport:
    """A copy of `report` with its counts on the CPU, to send to other processes."""
    copy = CompressionReport(method=report.method, target_compression=report.target_compression)
    for (phase, layer_idx), stats in report.layers.items():
        if stats.dense is not None and stats.sparse is not None:
            copy.layer(layer_idx, phase).add(stats.dense.detach().cpu(), stats.sparse.detach().cpu())
    return copy


@register_model("sparse-hf")
class SparseHFLM(HFLM):
    """HFLM whose attention runs a `sparse_eval` method (see the module docstring)."""

    def __init__(
        self,
        pretrained: Any,
        method: str = "dense",
        compression: float | str = 1.0,
        sparse_backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        kwargs.update(method=method, compression=compression, sparse_backend=sparse_backend)
        self.sparse_method = sparse_args(kwargs)
        super().__init__(pretrained, **kwargs)
        self._use_accelerate_ranks()
        self.report = self._new_report()
        self.reports_by_length: dict[int, CompressionReport] = {}
        self.requests_by_length: dict[int, int] = {}
        self._pending: list[tuple[CompressionReport, int]] | None = None

    def _use_accelerate_ranks(self) -> None:
        """Take rank and world size from accelerate when it started several processes. HFLM does so only when
        it counts more than one GPU; otherwise (CPU processes, several processes on one GPU) every process
        would run all requests (checked with `hf` in two CPU processes: both evaluated all three documents,
        only LOCAL_RANK 0 wrote results)."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is None or accelerator.num_processes <= 1 or self._world_size > 1:
            return
        self._rank = accelerator.process_index
        self._world_size = accelerator.num_processes

    @classmethod
    def check_model_args(cls, model_args: Mapping[str, Any]) -> None:
        """Validate the sparse arguments before any data is generated (`longtasks eval` calls this)."""
        sparse_args(dict(model_args))

    def reset_report(self) -> None:
        """Start the compression record afresh (all requests and per length): a sweep reuses one model
        object for several cells, and each cell's results must hold only its own requests."""
        self.report = self._new_report()
        self.reports_by_length = {}
        self.requests_by_length = {}

    def _new_report(self) -> CompressionReport:
        return CompressionReport(
            method=self.sparse_method.name, target_compression=self.sparse_method.compression
        )

    def _merge(self, report: CompressionReport, length: int) -> None:
        if self._pending is not None:  # data parallel: merged once every process's reports are gathered
            self._pending.append((report, int(length)))
            return
        by_length = self.reports_by_length.setdefault(int(length), self._new_report())
        self.requests_by_length[int(length)] = self.requests_by_length.get(int(length), 0) + 1
        for (phase, layer_idx), stats in report.layers.items():
            if stats.dense is not None and stats.sparse is not None:
                for target in (self.report, by_length):
                    target.layer(layer_idx, phase).add(stats.dense, stats.sparse)

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list:
        return self._run_share(super().generate_until, requests, disable_tqdm)

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list:
        return self._run_share(super().loglikelihood, requests, disable_tqdm)

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list:
        return self._run_share(super().loglikelihood_rolling, requests, disable_tqdm, rolling=True)

    def _run_share(
        self, run: Callable[..., list], requests: list, disable_tqdm: bool, rolling: bool = False
    ) -> list:
        """Run this process's share of the requests (see the module docstring, data parallel): lm-eval's padding
        copies are answered from the original request, and the compression reports of all processes are
        gathered into every process's `report` once the share is done."""
        if self.world_size <= 1:
            return run(requests, disable_tqdm=disable_tqdm)
        real, where = split_padding(requests)
        self._pending = []
        world_size = self._world_size
        try:
            if rolling:  # HFLM would pad the rolling windows to equal counts across processes: not needed
                self._world_size = 1  # here (no collective runs inside a forward pass), and counted twice
            results = run(real, disable_tqdm=disable_tqdm)
        finally:
            self._world_size = world_size
            pending, self._pending = self._pending, None
        for report, length in self._gather_reports(pending):
            self._merge(report, length)
        return [results[i] for i in where]

    def _gather_reports(
        self, pending: list[tuple[CompressionReport, int]]
    ) -> list[tuple[CompressionReport, int]]:
        """Every process's (report, prompt length) pairs, in rank order, on every process."""
        local = [(portable_report(report), length) for report, length in pending]
        gathered: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, local)
        return [item for part in gathered for item in part]

    def compression_summary(self) -> dict[str, Any]:
        """Requested vs achieved compression of the method's phase, overall and per prompt length."""
        phase = self.sparse_method.phase if self.sparse_method.phase in PHASES else None

        def achieved(report: CompressionReport) -> float | None:
            value = report.achieved_compression(phase) if phase else float("nan")
            return None if value != value else value  # NaN (nothing recorded) -> None, JSON-friendly

        return {
            "method": self.sparse_method.name,
            "phase": phase,
            "requested": self.sparse_method.compression,
            "achieved": achieved(self.report),
            "achieved_by_length": {str(n): achieved(r) for n, r in sorted(self.reports_by_length.items())},
            "requests_by_length": {str(n): count for n, count in sorted(self.requests_by_length.items())},
        }

    def get_model_info(self) -> dict:
        """HFLM's model info plus `sparse_compression` (lm-eval stores it in the results' config); logs the
        requested vs achieved compression and warns once if it fell far short."""
        info = super().get_model_info()
        summary = self.compression_summary()
        info["sparse_compression"] = summary
        if summary["phase"] and summary["achieved"] is not None:
            per_length = ", ".join(
                f"{n}: {a:.2f}x" for n, a in summary["achieved_by_length"].items() if a is not None
            )
            log.info(
                "sparse-hf %s: requested %gx, achieved %.2fx %s compression (%s)",
                summary["method"],
                summary["requested"],
                summary["achieved"],
                summary["phase"],
                per_length,
            )
            shortfall = self.report.shortfall(summary["phase"])
            if shortfall:
                warnings.warn(
                    f"{shortfall}; by prompt length: {per_length}", CompressionShortfallWarning, stacklevel=2
                )
        return info

    def tok_batch_encode(
        self,
        strings: list[str],
        padding_side: str = "left",
        left_truncate_len: int | None = None,
        truncation: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HFLM's encoding, but a context that does not fit is an error, not a silent left truncation."""
        ids, mask = super().tok_batch_encode(strings, padding_side, None, truncation)
        if left_truncate_len and ids.shape[1] > left_truncate_len:
            raise ValueError(
                f"context of {ids.shape[1]} tokens exceeds the {left_truncate_len} that fit (max_length "
                f"{self.max_length} minus the tokens to generate); raise max_length in --model_args or "
                "generate shorter samples instead of evaluating a truncated prompt"
            )
        return ids, mask

    def _loglikelihood_tokens(self, requests: list, *args: Any, **kwargs: Any) -> list:
        """HFLM's scoring, but a context + continuation that does not fit max_length is an error: HFLM
        would cut its start without a word. The lengths of the rows HFLM right-pads into a batch are
        recorded for `_model_call` (prefill methods attend each row's real tokens only)."""
        for _, context_enc, continuation_enc in requests:
            if len(context_enc) + len(continuation_enc) - 1 > self.max_length:
                raise ValueError(
                    f"a loglikelihood request of {len(context_enc) + len(continuation_enc)} tokens does not fit "
                    f"max_length {self.max_length}; raise max_length in --model_args instead of scoring a "
                    "truncated context"
                )
        original = getattr(_hf, "pad_and_concat", None)
        if original is None or self.sparse_method.phase != "prefill":
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

        def recording(max_length: int, tensors: list, padding_side: str = "right") -> torch.Tensor:
            if padding_side == "right":
                self._row_lengths = [int(t.shape[-1]) for t in tensors]
            return original(max_length, tensors, padding_side=padding_side)

        _hf.pad_and_concat = recording
        try:
            return super()._loglikelihood_tokens(requests, *args, **kwargs)
        finally:
            _hf.pad_and_concat = original
            self._row_lengths = None

    def _model_call(
        self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loglikelihood forward: under the method for prefill methods (a batch row by row on each row's
        real tokens, see the module docstring), dense otherwise."""
        if self.sparse_method.phase != "prefill":
            return super()._model_call(inps, attn_mask, labels)
        lengths = self._batch_lengths(inps)
        with (
            _quiet_shortfall(),
            apply(self.model, self.sparse_method, backend=self.sparse_method.backend) as session,
        ):
            if lengths is None:
                logits = super()._model_call(inps, attn_mask, labels)
                reports = [(session.report, inps.shape[-1])]
            else:
                columns = torch.arange(inps.shape[-1], device="cpu")[None, :]  # a host-side layout
                real = columns < torch.tensor(lengths, device="cpu")[:, None]
                with session.batch(real) as rows:
                    logits = super()._model_call(inps, attn_mask, labels)
                reports = list(zip(rows.reports, lengths, strict=True))
        for report, length in reports:
            self._merge(report, length)
        return logits

    def _batch_lengths(self, inps: torch.Tensor) -> list[int] | None:
        """Real lengths of the right-padded rows of a loglikelihood batch (None for a single row)."""
        lengths, self._row_lengths = getattr(self, "_row_lengths", None), None
        if inps.shape[0] == 1:
            return None
        if lengths is None or len(lengths) != inps.shape[0] or max(lengths) != inps.shape[-1]:
            raise RuntimeError(
                f"sparse-hf cannot tell the padding of this batch of {inps.shape[0]} rows (HFLM did not pad it "
                "through lm_eval.models.huggingface.pad_and_concat); run with batch_size=1"
            )
        return lengths

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, self.eot_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return sorted(i for i in ids if i is not None)

    def _model_generate(
        self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs: Any
    ) -> torch.Tensor:
        """Greedy generation of the batch's rows (left padding removed, then re-padded as one batch) through
        `sparse_eval.generate`; returns context + continuation ids (rows padded with the pad token), the
        layout HFLM.generate_until expects."""
        attention_mask = generation_kwargs.pop("attention_mask", None)
        do_sample = generation_kwargs.pop("do_sample", None)
        temperature = generation_kwargs.pop("temperature", 0.0)
        if do_sample or (temperature or 0.0) > 0.0:
            raise ValueError(
                f"sparse-hf decodes greedily; got do_sample={do_sample!r}, temperature={temperature!r} "
                "(set do_sample: false and temperature: 0 in the task's generation_kwargs)"
            )
        unsupported = {
            key: value
            for key, value in generation_kwargs.items()
            if key not in SAMPLING_ONLY and value is not None and GREEDY_NEUTRAL.get(key, object()) != value
        }
        if unsupported:
            raise ValueError(
                f"sparse-hf supports plain greedy decoding only; it cannot honour {unsupported} "
                "(remove them from the task's generation_kwargs / --gen_kwargs)"
            )
        max_new = max_length - context.shape[1]
        if max_new < 1:
            raise ValueError(f"no room to generate: max_length {max_length} <= context {context.shape[1]}")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._eos_ids()[0]
        prompts = [
            context[i] if attention_mask is None else context[i][attention_mask[i].bool()]
            for i in range(context.shape[0])
        ]
        with _quiet_shortfall():
            results = generate(
                self.model,
                prompts,
                self.sparse_method,
                max_new_tokens=max_new,
                eos_token_id=self._eos_ids(),
                stop=stop,
                tokenizer=self.tokenizer,
            )
        assert isinstance(results, list)
        rows = []
        for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
            self._merge(result.report, prompt.shape[-1])
            rows.append(context[i].tolist() + result.tokens)
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=context.device)
