"""What a checkpoint file holds, read without running anything from it (`python -m smt inspect FILE`).

`inspect_checkpoint` opens a file with the allow-list reader (`smt.reader`; a file that asks to call
anything is refused with the same errors as `smt.read_checkpoint`) and reports, from the pickle alone
(no tensor data is read): the format, the top-level entries and their types, the number of tensors, the weights'
parameters and bytes per dtype, their key layout (the authors' or this project's), the SMT variant they
match (or the nearest one and how the file differs from it), and pickled configuration objects (the
release files' yacs `CfgNode`) as plain nested values. `format_inspection` renders the report as text.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (
    CheckpointError,
    group_keys,
    infer_config,
    locate_weights,
    summarise_keys,
    variant_differences,
)
from .model import SMT
from .reader import FORMATS, TensorRef, UnknownObject, open_checkpoint
from .variants import VARIANTS

__all__ = ["inspect_checkpoint", "format_inspection"]

#: Entries that hold a configuration, shown in full (placeholder objects, such as a yacs `CfgNode`, always are).
_CONFIG_ENTRIES = ("config", "cfg", "args", "hyper_parameters", "hparams")
#: State-dict entries that are buffers (BatchNorm statistics), not parameters.
_BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def _is_tensor(obj: Any) -> bool:
    return isinstance(obj, (TensorRef, torch.Tensor))


def _numel(t: Any) -> int:
    return t.numel if isinstance(t, TensorRef) else t.numel()


def _nbytes(t: Any) -> int:
    return t.nbytes if isinstance(t, TensorRef) else t.numel() * t.element_size()


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _class_name(obj: Any) -> str:
    if _is_tensor(obj):
        return "tensor"
    return obj.pickled_class if isinstance(obj, UnknownObject) else type(obj).__name__


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(_is_tensor(v) for v in obj.values())


def _children(obj: Any) -> list:
    if isinstance(obj, UnknownObject):
        return [*obj.values(), obj.pickled_state, *obj.pickled_list, *obj.pickled_args]
    if isinstance(obj, Mapping):
        return list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)) and not isinstance(obj, torch.Size):
        return list(obj)
    return []


def _count_tensors(obj: Any) -> int:
    """Tensors anywhere in `obj`, each object once (pickle may refer to one object from several places)."""
    seen, stack, n = set(), [obj], 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if _is_tensor(o):
            n += 1
        else:
            stack.extend(_children(o))
    return n


def _plain(obj: Any, depth: int = 0) -> Any:
    """`obj` as JSON-ready values: placeholders and mappings as dicts, sequences as lists, tensors described."""
    if depth > 32:
        return "..."
    if _is_tensor(obj):
        return f"tensor {_dtype(obj)} {tuple(obj.shape)}"
    if isinstance(obj, UnknownObject):
        if len(obj):
            return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
        state = obj.pickled_state
        if isinstance(state, Mapping):
            return {str(k): _plain(v, depth + 1) for k, v in state.items() if not str(k).startswith("__")}
        if obj.pickled_list:
            return [_plain(v, depth + 1) for v in obj.pickled_list]
        return f"<{obj.pickled_class}>"
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, torch.Size):
        return list(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_plain(v, depth + 1) for v in obj), key=repr)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        return f"<{len(obj)} bytes>"
    return str(obj)


def _entry(name: str, value: Any) -> dict[str, Any]:
    tensors = _count_tensors(value)
    if _is_tensor(value):
        summary = f"{_dtype(value)} {tuple(value.shape)}"
    elif isinstance(value, UnknownObject):
        plain = _plain(value)
        fields = len(plain) if isinstance(plain, (dict, list)) else 0
        summary = f"placeholder (the class is not imported), {fields} fields"
    elif isinstance(value, Mapping):
        if _is_state_dict(value):
            summary = f"{len(value)} tensors"
        else:
            keys = [str(k) for k in value]
            summary = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "") if keys else "empty"
            summary += f"; {tensors} tensors" if tensors else ""
    elif isinstance(value, (list, tuple, set, frozenset)):
        summary = f"{len(value)} items" + (f"; {tensors} tensors" if tensors else "")
    elif value is None or isinstance(value, (bool, int, float)):
        summary = repr(value)
    elif isinstance(value, str):
        summary = repr(value if len(value) <= 60 else value[:57] + "...")
    else:
        summary = str(value)[:60]
    return dict(name=name, type=_class_name(value), tensors=tensors, summary=summary)


def _tensor_stats(state: Mapping[str, Any]) -> dict[str, Any]:
    dtypes: dict[str, dict[str, int]] = {}
    for v in state.values():
        d = dtypes.setdefault(_dtype(v), dict(tensors=0, values=0, bytes=0))
        d["tensors"] += 1
        d["values"] += _numel(v)
        d["bytes"] += _nbytes(v)
    return dict(tensors=len(state), parameters=sum(_numel(v) for k, v in state.items()
                                                   if not k.endswith(_BUFFER_SUFFIXES)),
                values=sum(d["values"] for d in dtypes.values()), bytes=sum(d["bytes"] for d in dtypes.values()),
                dtypes=dict(sorted(dtypes.items(), key=lambda item: -item[1]["bytes"])))


def _nearest(state: Mapping[str, Any], config: Mapping[str, Any],
             differences: Mapping[str, Mapping[str, tuple]]) -> dict[str, Any]:
    """The variant that differs from `config` in the fewest architecture entries, and the key differences."""
    name = min(differences, key=lambda n: len(differences[n]))
    with torch.device("meta"):  # shapes only: no memory is allocated
        own = SMT(**dict(VARIANTS[name], in_chans=config["in_chans"], num_classes=config["num_classes"])).state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = {k: [list(state[k].shape), list(own[k].shape)] for k in state
             if k in own and state[k].shape != own[k].shape}
    return dict(variant=name, differences={k: dict(file=_plain(a), variant=_plain(b))
                                           for k, (a, b) in differences[name].items()},
                missing_keys=group_keys(missing), unexpected_keys=group_keys(unexpected), shape_mismatches=wrong)


def inspect_checkpoint(path: os.PathLike) -> dict[str, Any]:
    """What a checkpoint file holds, as JSON-ready values; no code from the file runs.

    The tensors' shapes and dtypes come from the pickle: their data is not read (a safetensors file is
    read whole, as `smt.reader` reads it).

    Args:
        path: A `torch.save` file (zip or legacy format) or a `.safetensors` file.

    Returns:
        A dict of
        - `path`, `file_bytes`; `format` (a key of `smt.reader.FORMATS`), `format_description`;
          `metadata` (a safetensors header's, else None);
        - `holds`: the type of the top-level object, or "state dict" for a bare dict of tensors;
        - `entries`: the top-level entries (name, type, tensors inside, a summary), or None for a
          bare state dict;
        - `tensors`: every tensor in the file, the optimizer state's included;
        - `weights`: the state dict: the entry that holds it (None: the whole file), whether its keys
          had the `module.` prefix, its tensors, parameters (BatchNorm statistics are not), values
          and bytes, in all and per dtype; None without SMT weights;
        - `layout`: "official" (the authors' keys) or "timm" (this project's);
        - `variant`: the registered SMT variant the weights are, or None; `architecture`:
          `smt.checkpoint.infer_config` of the weights;
        - `nearest` (without an exact variant): the variant that differs in the fewest architecture
          entries, those entries (`differences`), the `missing_keys` and `unexpected_keys` by stage,
          and the `shape_mismatches`;
        - `configs`: configuration entries (placeholder objects such as the release files' yacs
          `config`, and plain dicts under `config`, `args`, ...) as nested plain values;
        - `problem`: why the file holds no readable SMT weights, or None.

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated, corrupt, a directory, or not a checkpoint at all.
    """
    path = Path(path)
    with open_checkpoint(path) as file:
        obj = file.obj
    report: dict[str, Any] = dict(
        path=str(path), file_bytes=path.stat().st_size, format=file.format, format_description=FORMATS[file.format],
        metadata=file.metadata, holds="state dict" if _is_state_dict(obj) else _class_name(obj), entries=None,
        tensors=_count_tensors(obj), weights=None, layout=None, variant=None, architecture=None, nearest=None,
        configs={}, problem=None)
    is_mapping = isinstance(obj, Mapping)
    if is_mapping:
        report["configs"] = {str(k): dict(type=_class_name(v), values=_plain(v)) for k, v in obj.items()
                             if isinstance(v, UnknownObject) or (k in _CONFIG_ENTRIES and isinstance(v, Mapping))}
    try:
        weights = locate_weights(path, obj)
    except CheckpointError as e:
        report["problem"] = str(e).removeprefix(f"{path}: ")
        weights = None
    if is_mapping and not _is_state_dict(obj):
        report["entries"] = [_entry(str(k), v) for k, v in obj.items()]
    if weights is None:
        return report
    report["weights"] = dict(entry=weights.entry, module_prefix=weights.module_prefix,
                             **_tensor_stats(weights.state))
    report["layout"] = weights.layout
    try:
        config = infer_config(weights.state)
    except ValueError as e:
        report["problem"] = f"the SMT architecture cannot be read from the weights: {e}"
        return report
    report["architecture"] = _plain(config)
    differences = variant_differences(config)
    report["variant"] = next((name for name, diff in differences.items() if not diff), None)
    if report["variant"] is None:
        report["nearest"] = _nearest(weights.state, config, differences)
    return report


# ---- text --------------------------------------------------------------------------------------------

def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _dashed(values: Any) -> str:
    """1-1-2-1 for a sequence of numbers; nested sequences as tuples: ((3, 7), (5, 5), None)."""
    if not isinstance(values, (list, tuple)):
        return str(values)
    if any(isinstance(v, (list, tuple)) for v in values):
        return str(tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in values))
    return "-".join(map(str, values))


def _arch_line(arch: Mapping[str, Any]) -> str:
    line = (f"embed dims {_dashed(arch['embed_dims'])}, depths {_dashed(arch['depths'])}, "
            f"stem kernel {arch['stem_kernel']}, {arch['num_classes']} classes")
    return line + (f", {arch['in_chans']} input channels" if arch["in_chans"] != 3 else "")


def _yaml(value: Any, indent: int) -> list[str]:
    """Nested keys and values, one per line, YAML-like."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for k, v in value.items():
            if isinstance(v, dict) and v:
                lines += [f"{pad}{k}:"] + _yaml(v, indent + 2)
            else:
                lines.append(f"{pad}{k}: {json.dumps(v) if isinstance(v, (list, dict)) or v is None else v}")
        return lines
    return [pad + (json.dumps(value) if isinstance(value, list) else str(value))]


def _table(rows: list[tuple[str, ...]], indent: int = 2) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [" " * indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def format_inspection(report: Mapping[str, Any]) -> str:
    """`inspect_checkpoint`'s report as text: the file, its entries, the weights, configs; labels aligned."""
    label = 14
    lines = [report["path"]]

    def field(name: str, text: str) -> None:
        lines.append(f"  {name:<{label}}{text}")

    field("format", f"{report['format_description']}, {_size(report['file_bytes'])}")
    if report["metadata"]:
        field("metadata", ", ".join(f"{k}={v}" for k, v in report["metadata"].items()))
    weights, entries = report["weights"], report["entries"]
    if report["holds"] == "state dict":
        field("holds", f"a state dict of {report['tensors']} tensors")
    else:
        of = f" of {len(entries)} {'entry' if len(entries) == 1 else 'entries'}" if entries is not None else ""
        field("holds", f"{report['holds']}{of}, {report['tensors']} tensors in all")
    if entries:
        lines += ["", "entries"]
        lines += _table([(e["name"].ljust(label - 2), e["type"], e["summary"]) for e in entries])
    lines += ["", "weights" if not weights or weights["entry"] is None else f"weights (entry {weights['entry']!r})"]
    if not weights:
        field("problem", report["problem"])
        return _with_configs(lines, report)
    field("tensors", f"{weights['tensors']}: {weights['parameters']:,} parameters, {_size(weights['bytes'])}")
    lines += _table([(d.ljust(label - 2), f"{s['tensors']} tensors", f"{s['values']:,} values", _size(s["bytes"]))
                     for d, s in weights["dtypes"].items()])
    layout = ("the authors' (patch_embed1.*, block1.0.*, ...), read as this project's" if report["layout"] ==
              "official" else "this project's, timm's (stem.*, stages.0.blocks.0.*, ...)")
    field("layout", layout + (", under DistributedDataParallel's module. prefix" if weights["module_prefix"] else ""))
    arch = report["architecture"]
    if arch is None:
        field("variant", report["problem"])
    elif report["variant"]:
        field("variant", f"{report['variant']} ({_arch_line(arch)})")
    else:
        near = report["nearest"]
        field("variant", f"none registered ({_arch_line(arch)})")
        field("nearest", f"{near['variant']}, which differs in")
        for k, d in near["differences"].items():
            field("", f"  {k}: {_dashed(d['file'])} in the file, {_dashed(d['variant'])} in {near['variant']}")
        for what, keys in (("unexpected keys (in the file, not in the variant)", near["unexpected_keys"]),
                           ("missing keys (in the variant, not in the file)", near["missing_keys"])):
            flat = [k for group in keys.values() for k in group]
            if flat:
                field("", f"  {what}, {len(flat)}: {summarise_keys(flat)}")
        if near["shape_mismatches"]:
            wrong = near["shape_mismatches"]
            shown = ", ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, (a, b) in list(wrong.items())[:3])
            field("", f"  shape mismatches (file vs variant), {len(wrong)}: {shown}{', ...' if len(wrong) > 3 else ''}")
    return _with_configs(lines, report)


def _with_configs(lines: list[str], report: Mapping[str, Any]) -> str:
    for name, cfg in report["configs"].items():
        lines += ["", f"{name} ({cfg['type']})"] + _yaml(cfg["values"], 2)
    return "\n".join(lines)
