"""Reading SMT weight files safely: the authors' releases, plain state dicts, timm-native and safetensors files.

The SMT release files (Lin et al., "Scale-Aware Modulation Meet Transformer", ICCV 2023) are `torch.save`
pickles of `{"model": state_dict, "optimizer": ..., "lr_scheduler": ..., "max_accuracy": ..., "scaler": ...,
"epoch": ..., "config": <yacs CfgNode>}`. `torch.load(weights_only=True)` refuses them (the yacs object), and
`weights_only=False` would run whatever a tampered file asks for. This module unpickles them with an
allow-list instead:

- It reads PyTorch's zip format and its older ("legacy") pickle format itself and hands the pickle to a
  restricted `pickle.Unpickler` that never imports anything. Tensors are rebuilt from their storages by
  this module's own code; only containers, numbers, strings, `collections.OrderedDict`, `set`, `frozenset`,
  `complex`, `slice`, `bytearray`, `torch.Size`, `torch.device` and torch dtypes are created.
- Objects of other classes (the yacs `CfgNode`, `argparse.Namespace`, ...) become inert `UnknownObject`
  placeholders that keep their pickled items and state; the class is never imported (yacs need not be
  installed). Pickle creates such objects with its instantiation opcode, which calls nothing.
- A file that asks to *call* anything outside the allow-list (`os.system`, `builtins.eval`,
  `subprocess.Popen`, any `__reduce__` trick) is refused with `UnsafeCheckpointError` before anything
  from it runs.

Tensor data is read only for the tensors a caller keeps: `read_checkpoint` materialises the model
weights and never the optimizer state.
"""
from __future__ import annotations

import _compat_pickle
import inspect
import io
import json
import logging
import os
import pickle
import re
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from .model import SMT, VARIANTS, expand_block_types, is_official_state_dict, official_key_to_ours

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "CheckpointMismatchError", "UnknownObject",
    "safe_load", "read_checkpoint", "load_weights", "infer_config", "identify_variant",
    "create_model_from_checkpoint", "convert_checkpoint",
]

_logger = logging.getLogger(__name__)

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar")


class CheckpointError(ValueError):
    """A file that cannot be read as SMT weights; the message names the path and what was wrong."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks to call something outside the allow-list: it is not a plain checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """The file's weights do not fit the model they were loaded into."""


class _Refused(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _Corrupt(Exception):
    pass


# ---- inert stand-ins for classes the file names --------------------------------------------------

_MISSING = object()


class UnknownObject(dict):
    """Inert stand-in for an object of a class that is not on the allow-list (e.g. yacs `CfgNode`).

    It keeps what the pickle gave it: dict items (a `CfgNode` is a dict, so `obj["MODEL"]["TYPE"]` and
    `obj.MODEL.TYPE` work), list items in `pickled_list`, the `__setstate__` argument in `pickled_state`
    and the `__new__` arguments in `pickled_args`. The class it stands for is `pickled_class`
    ("module.Name"); it is never imported.
    """

    pickled_class = "?"

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        obj.__dict__["pickled_args"] = args
        obj.__dict__["pickled_list"] = []
        obj.__dict__["pickled_state"] = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any):  # never called by the unpickler; keeps dict() quiet
        pass

    def __setstate__(self, state: Any = _MISSING) -> None:
        if state is _MISSING:  # pickle BUILD applied to the class, not to an instance
            raise _Refused(f"change the class {self.pickled_class if isinstance(self, UnknownObject) else '?'}")
        self.__dict__["pickled_state"] = state

    def append(self, item: Any) -> None:
        self.__dict__["pickled_list"].append(item)

    def extend(self, items: Any) -> None:
        self.__dict__["pickled_list"].extend(items)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__") and name in self:
            return self[name]
        state = self.__dict__.get("pickled_state")
        if isinstance(state, dict) and name in state:
            return state[name]
        raise AttributeError(f"{self.pickled_class} placeholder has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<{self.pickled_class} (not imported) {dict.__repr__(self)}>"

    def __reduce__(self):  # a placeholder is data; copying it must not need the original class
        return dict, (dict(self),)


class _InertMeta(type):
    """Metaclass of the stand-ins: calling one (pickle REDUCE / INST) is refused; instantiation is not a call."""

    def __call__(cls, *args: Any, **kwargs: Any):
        raise _Refused(f"call {cls.pickled_class}")

    def __setattr__(cls, name: str, value: Any) -> None:  # pickle BUILD on the class itself
        raise _Refused(f"change the class {cls.pickled_class}")


class _Frozen:
    """Base of the allow-list's own objects: a file cannot change them (pickle BUILD sets attributes)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(f"change the reader's own {type(self).__name__}.{name}")


class _Allowed(_Frozen):
    """An allowed callable, wrapped so that a file cannot change its defaults or attributes."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable):
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@lru_cache(maxsize=None)
def _placeholder(module: str, name: str) -> type:
    return _InertMeta(name, (UnknownObject,), {"pickled_class": f"{module}.{name}", "__module__": "smt.checkpoint"})


# ---- tensors, rebuilt lazily ---------------------------------------------------------------------

@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int
    view: Optional[tuple[int, int]] = None  # (byte offset, bytes) for legacy storage views


class _StorageType(_Frozen):
    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        object.__setattr__(self, "dtype", dtype)


class _TensorRef:
    __slots__ = ("storage", "offset", "size", "stride", "dtype", "requires_grad")

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple, dtype: torch.dtype,
                 requires_grad: bool):
        if not isinstance(storage, _StorageRef):
            raise _Corrupt(f"a tensor refers to {type(storage).__name__} instead of its stored data")
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)
        self.dtype, self.requires_grad = dtype, bool(requires_grad)


_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}
_DTYPES = {str(d).split(".")[1]: d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool, torch.complex64, torch.complex128)}


def _no_metadata(metadata: Any) -> None:
    if metadata:
        raise _Refused(f"rebuild a tensor with metadata {metadata!r} (conjugate/negative views)")


def _rebuild_tensor(storage, storage_offset, size, stride):
    dtype = storage.dtype if isinstance(storage, _StorageRef) else None
    return _TensorRef(storage, storage_offset, size, stride, dtype, False)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _no_metadata(metadata)
    dtype = storage.dtype if isinstance(storage, _StorageRef) else None
    return _TensorRef(storage, storage_offset, size, stride, dtype, requires_grad)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _no_metadata(metadata)
    if not isinstance(dtype, torch.dtype):
        raise _Corrupt(f"tensor dtype is {type(dtype).__name__}")
    return _TensorRef(storage, storage_offset, size, stride, dtype, requires_grad)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _TensorRef):
        raise _Corrupt("a parameter without tensor data")
    data.requires_grad = bool(requires_grad)
    return data


class _TypeMarker(_Frozen):
    __slots__ = ("name",)

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)


_PARAMETER, _TENSOR = _TypeMarker("torch.nn.Parameter"), _TypeMarker("torch.Tensor")
_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)


def _rebuild_from_type_v2(func, new_type, args, state):
    func = func.fn if isinstance(func, _Allowed) else func
    if func not in _REBUILDERS or new_type not in (_PARAMETER, _TENSOR) or state:
        raise _Refused(f"rebuild a tensor subclass with {getattr(func, 'pickled_class', func)!r}")
    return func(*args)


def _codecs_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # protocol-2 pickles store bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise _Refused(f"call _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding, errors)


def _reconstructor(cls, base, state):
    # copyreg._reconstructor: how protocol 0/1 pickles create plain class instances
    if isinstance(cls, type) and issubclass(cls, UnknownObject) and base in (object, dict):
        obj = cls.__new__(cls)
        if state is not None:
            obj.update(state) if isinstance(state, dict) and base is dict else obj.__setstate__(state)
        return obj
    raise _Refused(f"call copyreg._reconstructor for {cls!r}")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "complex"): complex,
    ("builtins", "slice"): slice, ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _Allowed(_codecs_encode),
    ("copyreg", "_reconstructor"): _Allowed(_reconstructor),
    ("torch._utils", "_rebuild_tensor"): _Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Allowed(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Allowed(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Allowed(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Allowed(_rebuild_parameter),
    ("torch._tensor", "_rebuild_from_type_v2"): _Allowed(_rebuild_from_type_v2),
    ("torch.tensor", "_rebuild_from_type_v2"): _Allowed(_rebuild_from_type_v2),
    ("torch.nn.parameter", "Parameter"): _PARAMETER,
    ("torch", "Tensor"): _TENSOR, ("torch._tensor", "Tensor"): _TENSOR,
    ("torch", "Size"): torch.Size, ("torch", "device"): torch.device,
    **{("torch", n): d for n, d in _DTYPES.items()},
    **{(m, n): _StorageType(d) for n, d in _STORAGE_DTYPES.items() for m in ("torch", "torch.storage")},
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves names only from `_ALLOWED`, or to inert placeholders; never imports."""

    def __init__(self, file: io.BufferedIOBase, storage_ref: Callable[..., _StorageRef]):
        super().__init__(file, encoding="latin1")
        self._storage_ref = storage_ref

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Corrupt("a class reference that is not a string")
        # protocol 2 (torch.save's default) writes Python 2 names: map them back as pickle itself does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = _ALLOWED.get((module, name))
        return found if found is not None else _placeholder(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise _Corrupt(f"unknown persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise _Refused(f"load a persistent object of kind {kind!r} (only tensor storages are allowed)")
        return self._storage_ref(*pid[1:])


def _unpickle(data: io.BufferedIOBase, storage_ref: Callable[..., _StorageRef]) -> Any:
    return _SafeUnpickler(data, storage_ref).load()


# ---- file formats --------------------------------------------------------------------------------

class _Reader:
    """An unpickled object plus the means to read the tensor data it refers to."""

    def __init__(self, path: Path):
        self.path = path
        self.obj: Any = None
        self._cache: dict[Any, torch.Tensor] = {}
        self._swap = False

    def _raw(self, ref: _StorageRef) -> bytes:  # overridden per format
        raise NotImplementedError

    def close(self) -> None:
        self._cache.clear()

    def storage(self, ref: _StorageRef) -> torch.Tensor:
        cache_key = (ref.key, ref.view)
        if cache_key not in self._cache:
            itemsize = torch.empty((), dtype=ref.dtype).element_size()
            raw = self._raw(ref)
            expected = ref.numel * itemsize
            if ref.view is not None:
                raw = raw[ref.view[0]:ref.view[0] + ref.view[1]]
                expected = ref.view[1]
            if len(raw) != expected:
                raise _Corrupt(f"tensor data {ref.key!r} holds {len(raw)} bytes, expected {expected}")
            flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self._cache[cache_key] = flat
        return self._cache[cache_key]

    def tensor(self, ref: _TensorRef) -> torch.Tensor:
        dtype = ref.dtype or ref.storage.dtype
        flat = self.storage(ref.storage)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if flat.numel() % itemsize:
            raise _Corrupt(f"tensor data {ref.storage.key!r} is not a whole number of {dtype} values")
        if self._swap and itemsize > 1:
            flat = flat.view(-1, itemsize).flip(1).reshape(-1)
        base = flat.view(dtype) if flat.numel() else torch.empty(0, dtype=dtype)
        if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size) or any(s < 0 for s in ref.stride):
            raise _Corrupt(f"tensor of size {ref.size} has stride {ref.stride}")
        if all(s > 0 for s in ref.size):
            last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride))
            if ref.offset < 0 or last >= base.numel():
                raise _Corrupt(f"tensor of size {ref.size} reaches past its stored data ({base.numel()} values)")
            t = base.as_strided(ref.size, ref.stride, ref.offset)
        else:
            t = torch.empty(ref.size, dtype=dtype)
        if ref.requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        return t

    def materialise(self, obj: Any) -> Any:
        """`obj` with every tensor reference replaced by its tensor (containers rebuilt, placeholders kept)."""
        if isinstance(obj, _TensorRef):
            return self.tensor(obj)
        if isinstance(obj, UnknownObject):
            for k in list(obj):
                obj[k] = self.materialise(obj[k])
            obj.__dict__["pickled_state"] = self.materialise(obj.pickled_state)
            obj.__dict__["pickled_list"] = [self.materialise(v) for v in obj.pickled_list]
            return obj
        if isinstance(obj, dict):
            out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
            for k, v in obj.items():
                out[k] = self.materialise(v)
            return out
        if isinstance(obj, list):
            return [self.materialise(v) for v in obj]
        if isinstance(obj, tuple) and not isinstance(obj, torch.Size):
            return tuple(self.materialise(v) for v in obj)
        return obj


class _ZipReader(_Reader):
    def __init__(self, path: Path):
        super().__init__(path)
        try:
            self.zf = zipfile.ZipFile(path)
            names = self.zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path}: the file is truncated or corrupt (its zip archive cannot be read: {e}); "
                                  f"download or save it again") from None
        try:
            self._setup(path, names)
        except BaseException:
            self.zf.close()
            raise

    def _setup(self, path: Path, names: list[str]) -> None:
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise CheckpointError(f"{path}: this is a TorchScript archive (torch.jit.save), not a weights file; "
                                  f"load it with torch.jit.load, or save model.state_dict() with torch.save")
        pkl = sorted((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")), key=len)
        if not pkl:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise CheckpointError(f"{path}: this is a zip archive but not a PyTorch checkpoint (it has no data.pkl; "
                                  f"it holds {shown or 'nothing'}); pass a .pth file written by torch.save or a "
                                  f".safetensors file")
        self.prefix = pkl[0][:-len("data.pkl")]
        byteorder = self._read(self.prefix + "byteorder") if self.prefix + "byteorder" in names else b"little"
        if byteorder not in (b"little", b"big"):
            raise _Corrupt(f"unknown byte order {byteorder!r}")
        self._swap = byteorder.decode() != sys.byteorder
        self.obj = _unpickle(io.BytesIO(self._read(pkl[0])), self._storage_ref)

    def close(self) -> None:
        super().close()
        self.zf.close()

    def _read(self, name: str) -> bytes:
        try:
            return self.zf.read(name)
        except KeyError:
            raise _Corrupt(f"record {name!r} is missing") from None

    def _storage_ref(self, storage_type, key, location, numel, *rest) -> _StorageRef:
        if not isinstance(storage_type, _StorageType):
            raise _Refused(f"load tensor data of type {getattr(storage_type, 'pickled_class', storage_type)!r}")
        return _StorageRef(str(key), storage_type.dtype, int(numel))

    def _raw(self, ref: _StorageRef) -> bytes:
        return self._read(f"{self.prefix}data/{ref.key}")


class _LegacyReader(_Reader):
    """PyTorch's format before 1.6: magic, protocol, sys info, the object, storage keys, then raw storages."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._refs: dict[str, _StorageRef] = {}
        with open(path, "rb") as f:
            magic = _unpickle(f, self._no_storage)
            if type(magic) is not int or magic != _TORCH_MAGIC:
                raise CheckpointError(f"{path}: this is a pickle file but not a PyTorch checkpoint (no torch "
                                      f"magic number); pass a .pth file written by torch.save or a .safetensors file")
            header = [magic] + [_unpickle(f, self._no_storage) for _ in range(2)]
            if header[1] != _TORCH_LEGACY_PROTOCOL:
                raise _Corrupt(f"unknown legacy protocol version {header[1]!r}")
            info = header[2] if isinstance(header[2], dict) else {}
            self._swap = bool(info.get("little_endian", True)) != (sys.byteorder == "little")
            self.obj = _unpickle(f, self._storage_ref)
            keys = _unpickle(f, self._no_storage)
            if not isinstance(keys, list):
                raise _Corrupt("the storage key list is missing")
            self._offsets: dict[str, tuple[int, int]] = {}
            for key in keys:
                ref = self._refs.get(str(key))
                if ref is None:
                    raise _Corrupt(f"storage {key!r} is listed but never used")
                head = f.read(8)
                if len(head) != 8:
                    raise _Corrupt(f"the data of storage {key!r} is cut off")
                numel = struct.unpack("<q" if not self._swap else ">q", head)[0]
                nbytes = numel * torch.empty((), dtype=ref.dtype).element_size()
                self._offsets[str(key)] = (f.tell(), nbytes)
                f.seek(nbytes, os.SEEK_CUR)
            if f.tell() > path.stat().st_size:
                raise _Corrupt("the tensor data is cut off")

    @staticmethod
    def _no_storage(*args):
        raise _Corrupt("tensor data outside the main object")

    def _storage_ref(self, storage_type, key, location, numel, view_metadata=None, *rest) -> _StorageRef:
        if not isinstance(storage_type, _StorageType):
            raise _Refused(f"load tensor data of type {getattr(storage_type, 'pickled_class', storage_type)!r}")
        ref = _StorageRef(str(key), storage_type.dtype, int(numel))
        self._refs.setdefault(ref.key, ref)
        if view_metadata is not None:
            _, offset, size = view_metadata
            itemsize = torch.empty((), dtype=ref.dtype).element_size()
            ref = _StorageRef(ref.key, ref.dtype, int(size), (int(offset) * itemsize, int(size) * itemsize))
        return ref

    def _raw(self, ref: _StorageRef) -> bytes:
        if ref.key not in self._offsets:
            raise _Corrupt(f"the data of storage {ref.key!r} is missing")
        offset, nbytes = self._offsets[ref.key]
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(nbytes)


def _describe_text(path: Path, head: bytes) -> Optional[str]:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head[:-4].decode("utf-8")  # a multi-byte character cut at the end of the sample
        except UnicodeDecodeError:
            return None
    if text.startswith("version https://git-lfs"):
        return (f"{path}: this is a Git LFS pointer, not the weights; fetch the file with `git lfs pull` "
                f"(or download it again)")
    if "<html" in text[:512].lower() or text.lstrip().lower().startswith("<!doctype"):
        return (f"{path}: this is an HTML page, not a checkpoint (probably an error or login page saved in "
                f"place of the download); download the file again")
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"{path}: this is a text file, not a checkpoint (it starts with {first!r}); pass a .pth or .safetensors file"


def _open(path: os.PathLike) -> tuple[Any, Optional[_Reader]]:
    """The unpickled object (tensors still as references) and its reader; safetensors are read eagerly."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path (relative paths start from {Path.cwd()})")
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
        hint = f"pass one of the files inside it: {', '.join(files[:5])}" if files else \
            "it holds no .pth/.pt/.bin/.ckpt/.safetensors file"
        raise CheckpointError(f"{path}: this is a directory, not a checkpoint file; {hint}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); the download or save did not finish, "
                              f"fetch or save it again")
    with open(path, "rb") as f:
        head = f.read(1024)
    try:
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            reader: _Reader = _ZipReader(path)
            return reader.obj, reader
        if head[:1] == b"\x80" and len(head) >= 2 and head[1] <= pickle.HIGHEST_PROTOCOL:
            reader = _LegacyReader(path)
            return reader.obj, reader
        text = _describe_text(path, head)
        if text:
            raise CheckpointError(text)
        if len(head) >= 9 and head[8:9] == b"{":
            return _read_safetensors(path, head, size), None
        if len(head) > 262 and head[257:262] == b"ustar":
            raise CheckpointError(f"{path}: this is a tar archive (PyTorch's format before version 0.4 uses one); "
                                  f"it is not supported: re-save the weights with a current torch.save")
    except _Refused as e:
        raise UnsafeCheckpointError(
            f"{path}: not a plain checkpoint: unpickling it would {e.what}, which is not on the allow-list of "
            f"tensors, containers, numbers and strings. Nothing from the file was run. If you made this file, save "
            f"model.state_dict() instead") from None
    except CheckpointError:
        raise
    except (_Corrupt, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error, OverflowError, RuntimeError, zipfile.BadZipFile, UnicodeDecodeError,
            RecursionError, MemoryError) as e:
        detail = f"{type(e).__name__}: {e}" if not isinstance(e, _Corrupt) else str(e)
        raise CheckpointError(f"{path}: the file is truncated or corrupt ({detail}); download or save it again") \
            from None
    raise CheckpointError(f"{path}: not a checkpoint format this reader knows (PyTorch .pth/.pt zip or legacy "
                          f"pickle, .safetensors); it starts with bytes {head[:8]!r}")


def _read_safetensors(path: Path, head: bytes, size: int) -> dict[str, torch.Tensor]:
    (header_len,) = struct.unpack("<Q", head[:8])
    if 8 + header_len > size:
        raise _Corrupt(f"safetensors header of {header_len} bytes but the file has {size}")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, json.JSONDecodeError) as e:
        raise _Corrupt(f"safetensors: {e}") from None


def _wrap_errors(path: Path, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except _Refused as e:
        raise UnsafeCheckpointError(f"{path}: not a plain checkpoint: it would {e.what}; nothing from the file was "
                                    f"run") from None
    except (_Corrupt, zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:
        detail = f"{type(e).__name__}: {e}" if not isinstance(e, _Corrupt) else str(e)
        raise CheckpointError(f"{path}: the file is truncated or corrupt ({detail}); download or save it again") \
            from None


def safe_load(path: os.PathLike) -> Any:
    """Everything in a checkpoint file, unpickled with the allow-list (see the module docstring).

    Tensors come back as CPU tensors; objects of classes outside the allow-list come back as
    `UnknownObject` placeholders (e.g. the release files' yacs `config`).

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated, corrupt, or not a checkpoint at all.
    """
    path = Path(path)
    obj, reader = _open(path)
    if reader is None:
        return obj
    try:
        return _wrap_errors(path, lambda: reader.materialise(obj))
    finally:
        reader.close()


# ---- the weights in this project's layout --------------------------------------------------------

def _type_name(obj: Any) -> str:
    name = obj.pickled_class if isinstance(obj, UnknownObject) else type(obj).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def _find_state_dict(path: Path, obj: Any) -> Mapping:
    if isinstance(obj, UnknownObject) and not len(obj):
        raise CheckpointError(f"{path}: holds a pickled {obj.pickled_class} object, not a state dict; "
                              f"save model.state_dict() instead of the model")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds {_type_name(obj)}, not a state dict (a dict of tensors)")
    for wrapper in ("model", "state_dict", "model_state_dict", "module"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and any(isinstance(v, (_TensorRef, torch.Tensor)) for v in inner.values()):
            return inner
    if isinstance(obj.get("model"), UnknownObject):
        raise CheckpointError(f"{path}: its 'model' entry is a pickled {obj['model'].pickled_class} object, not a "
                              f"state dict; save model.state_dict() instead of the model")
    if not any(isinstance(v, (_TensorRef, torch.Tensor)) for v in obj.values()):
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(f"{path}: holds no weights: its top-level entries ({keys}) contain no "
                              f"'model'/'state_dict' dict of tensors")
    return obj


def _looks_like_smt(keys: list[str]) -> bool:
    return any(k.startswith(("stem.conv1.", "stages.0.blocks.")) for k in keys)


def read_checkpoint(path: os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of an SMT checkpoint file, in this project's key layout.

    Reads, without running any code from the file: the authors' release files (`{"model": ..., "config":
    <yacs CfgNode>, "optimizer": ..., ...}`, yacs need not be installed), a bare state dict in the
    authors' keys, `{"state_dict": ...}` wrappers, this project's timm-native `.pth` files and
    `.safetensors` files, in PyTorch's zip or legacy format. Only the weights' data is read (not the
    optimizer state). A `module.` prefix (DistributedDataParallel) is removed.

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated or corrupt file, a directory, a text file, a pickled model
            object, no weights, or weights of another architecture.
    """
    path = Path(path)
    obj, reader = _open(path)
    try:
        return _weights(path, obj, reader)
    finally:
        if reader is not None:
            reader.close()


def _weights(path: Path, obj: Any, reader: Optional[_Reader]) -> dict[str, torch.Tensor]:
    state = _find_state_dict(path, obj)
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, (_TensorRef, torch.Tensor)):
            what = f"key {k!r} holds {_type_name(v)}" if isinstance(k, str) else f"key {k!r} is not a string"
            raise CheckpointError(f"{path}: is not a state dict: {what}, not a tensor")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    keys = list(state)
    if is_official_state_dict(state):
        foreign = []
        renamed = {}
        for k in keys:
            try:
                renamed[official_key_to_ours(k)] = k
            except KeyError:
                foreign.append(k)
        if foreign:
            raise CheckpointError(f"{path}: has SMT keys in the authors' layout but also {len(foreign)} key(s) SMT "
                                  f"has no place for ({', '.join(foreign[:4])}); is it a model built on SMT "
                                  f"(detection, segmentation)? Keep only the backbone's keys")
        state = {new: state[old] for new, old in renamed.items()}
    elif not _looks_like_smt(keys):
        shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
        raise CheckpointError(f"{path}: holds weights of another architecture, not SMT: none of its {len(keys)} "
                              f"keys ({shown}) is an SMT key (stem.*, stages.*, or the authors' patch_embed1.*, "
                              f"block1.*)")
    if reader is None:
        return dict(state)
    return _wrap_errors(path, lambda: {k: reader.tensor(v) if isinstance(v, _TensorRef) else v
                                       for k, v in state.items()})


# ---- reading the architecture from the weights ---------------------------------------------------

def _ratio(hidden: int, dim: int) -> float:
    return hidden // dim if hidden % dim == 0 else hidden / dim


def infer_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The `SMT` arguments that the shapes and keys of a state dict (this project's layout) determine.

    Read from the weights: `in_chans`, `stem_kernel` (first conv), `embed_dims` (stage norms), `depths`,
    `block_types` (SAM blocks have `attn.v`, MSA blocks `attn.q`), `sam_heads` and `kernel_sizes` (the
    per-head depthwise convs), `saa` and `expand_ratio`, `mlp_ratios`, `qkv_bias`, layer scale
    (`ls1.gamma` present; its initial value is not recorded, 1e-4 is used) and `num_classes` (the
    head; 0 without one). `msa_heads` is not included: attention head counts leave no trace in the
    weights (see `create_model_from_checkpoint`).

    Raises:
        ValueError: The keys do not describe an SMT that `SMT(...)` can build.
    """
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{key} is missing")
        return state[key]

    stem = need("stem.conv1.weight")
    stage_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"stages\.(\d+)\.", k))})
    if stage_ids != list(range(len(stage_ids))) or not stage_ids:
        raise ValueError(f"stages {stage_ids} are not numbered 0..n-1")
    cfg: dict[str, Any] = dict(in_chans=stem.shape[1], stem_kernel=stem.shape[-1], embed_dims=[], depths=[],
                               block_types=[], sam_heads=[], kernel_sizes=[], saa=[], expand_ratio=[],
                               mlp_ratios=[], qkv_bias=any(k.endswith(("attn.v.bias", "attn.q.bias")) for k in state),
                               layer_scale=1e-4 if any(k.endswith(".ls1.gamma") for k in state) else None)
    for i in stage_ids:
        dim = need(f"stages.{i}.norm.weight").shape[0]
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(rf"stages\.{i}\.blocks\.(\d+)\.", k))})
        if blocks != list(range(len(blocks))):
            raise ValueError(f"stage {i}: blocks {blocks} are not numbered 0..n-1")
        types, sam, mlp = [], set(), set()
        for j in blocks:
            p = f"stages.{i}.blocks.{j}."
            mlp.add(_ratio(need(p + "mlp.fc1.weight").shape[0], dim))
            if p + "attn.q.weight" in state:
                types.append("msa")
            elif p + "attn.v.weight" in state:
                types.append("sam")
                kernels = []
                while p + f"attn.mhmc.convs.{len(kernels)}.weight" in state:
                    kernels.append(state[p + f"attn.mhmc.convs.{len(kernels)}.weight"].shape[-1])
                has_saa = p + "attn.saa.expand.weight" in state
                ratio = _ratio(state[p + "attn.saa.expand.weight"].shape[0], dim) if has_saa else 2.0
                sam.add((tuple(kernels), has_saa, ratio))
            else:
                raise ValueError(f"{p[:-1]} is neither a SAM block (attn.v) nor an MSA block (attn.q)")
        if len(sam) > 1 or len(mlp) > 1:
            raise ValueError(f"stage {i}: its blocks differ in MHMC kernels, SAA or MLP width, which SMT configures "
                             f"per stage")
        kernels, has_saa, ratio = sam.pop() if sam else ((), True, 2.0)
        pattern = _pattern(tuple(types))
        cfg["embed_dims"].append(dim)
        cfg["depths"].append(len(blocks))
        cfg["block_types"].append(pattern)
        cfg["sam_heads"].append(len(kernels) if kernels else 4)
        cfg["kernel_sizes"].append(kernels if kernels else None)
        cfg["saa"].append(has_saa)
        cfg["expand_ratio"].append(ratio)
        cfg["mlp_ratios"].append(mlp.pop() if mlp else 4)
    cfg["num_classes"] = state["head.weight"].shape[0] if "head.weight" in state else 0
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}


_ARCH_KEYS = ("in_chans", "stem_kernel", "embed_dims", "depths", "block_types", "sam_heads", "kernel_sizes", "saa",
              "expand_ratio", "mlp_ratios", "qkv_bias", "layer_scale")


def _pattern(types: tuple[str, ...]) -> Any:
    if types and all(t == "sam" for t in types):
        return "sam"
    if types and all(t == "msa" for t in types):
        return "msa"
    if types == tuple("sam" if j % 2 == 0 else "msa" for j in range(len(types))):
        return "mix"
    return types


@lru_cache(maxsize=None)
def _variant_config(name: str) -> dict[str, Any]:
    """What `infer_config` reads from the weights of `SMT(**VARIANTS[name])`, without building it."""
    args = {k: p.default for k, p in inspect.signature(SMT.__init__).parameters.items() if k != "self"}
    args.update(VARIANTS[name])
    n = len(args["embed_dims"])

    def per(x: Any) -> tuple:
        return tuple(x) if isinstance(x, (list, tuple)) else (x,) * n

    cfg: dict[str, Any] = {k: [] for k in ("block_types", "sam_heads", "kernel_sizes", "saa", "expand_ratio",
                                           "mlp_ratios")}
    bts = per(args["block_types"]) if not isinstance(args["block_types"], str) else (args["block_types"],) * n
    kernel_sizes = per(args["kernel_sizes"]) if args["kernel_sizes"] is not None else (None,) * n
    for i, (dim, depth) in enumerate(zip(args["embed_dims"], args["depths"])):
        types = expand_block_types(bts[i], depth, i)
        sam = "sam" in types
        heads = per(args["sam_heads"])[i]
        kernels = tuple(kernel_sizes[i]) if kernel_sizes[i] is not None else tuple(3 + 2 * h for h in range(heads))
        cfg["block_types"].append(_pattern(types))
        cfg["sam_heads"].append(len(kernels) if sam else 4)
        cfg["kernel_sizes"].append(kernels if sam else None)
        cfg["saa"].append(per(args["saa"])[i] if sam else True)
        ratio = per(args["expand_ratio"])[i]
        cfg["expand_ratio"].append(_ratio(int(dim * ratio), dim) if sam and per(args["saa"])[i] else 2.0)
        cfg["mlp_ratios"].append(_ratio(int(dim * per(args["mlp_ratios"])[i]), dim) if depth else 4)
    cfg = {k: tuple(v) for k, v in cfg.items()}
    return dict(cfg, in_chans=args["in_chans"], stem_kernel=args["stem_kernel"], embed_dims=tuple(args["embed_dims"]),
                depths=tuple(args["depths"]), qkv_bias=bool(args["qkv_bias"]),
                layer_scale=1e-4 if args["layer_scale"] is not None else None)


def identify_variant(config: Mapping[str, Any]) -> Optional[str]:
    """The registered variant whose architecture is `config` (from `infer_config`), or None."""
    for name in VARIANTS:
        ref = _variant_config(name)
        if all(config.get(k) == ref[k] for k in _ARCH_KEYS if k != "in_chans"):
            return name
    return None


def _describe(config: Mapping[str, Any]) -> str:
    name = identify_variant(config)
    dims = "-".join(map(str, config["embed_dims"]))
    depths = "-".join(map(str, config["depths"]))
    arch = f"embed dims {dims}, depths {depths}, stem kernel {config['stem_kernel']}"
    return f"{name} ({arch})" if name else f"a custom SMT ({arch})"


def _group(keys: list[str], limit: int = 3) -> str:
    """'stages.2: 40 (blocks.8.*, blocks.9.*, ...); head: 2 (weight, bias)'."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        m = re.match(r"(stages\.\d+)\.(blocks\.\d+)\.", k) or re.match(r"(stages\.\d+|stem|head)\.()", k)
        if m:
            group, sub = m.group(1), (m.group(2) + ".*") if m.group(2) else k[len(m.group(1)) + 1:]
        else:
            group, sub = "other", k
        subs = groups.setdefault(group, [])
        if sub not in subs:
            subs.append(sub)
        groups[group + "#n"] = groups.get(group + "#n", []) + [k]
    parts = []
    for g, subs in groups.items():
        if g.endswith("#n"):
            continue
        shown = ", ".join(subs[:limit]) + (", ..." if len(subs) > limit else "")
        parts.append(f"{g}: {len(groups[g + '#n'])} ({shown})")
    return "; ".join(parts)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if "head.weight" in state and (not isinstance(head, nn.Linear) or state["head.weight"].shape != head.weight.shape):
        # another class count (fine-tuning) or no head: keep the backbone, leave the classifier as initialised
        _logger.info("%s: classifier of %s classes not loaded (model has %s)", path, state["head.weight"].shape[0],
                     getattr(head, "out_features", 0))
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    w = state.get("stem.conv1.weight")
    if w is not None and "stem.conv1.weight" in own and w.shape[1] != own["stem.conv1.weight"].shape[1] \
            and w.shape[0] == own["stem.conv1.weight"].shape[0]:
        from timm.models import adapt_input_conv

        state = dict(state, **{"stem.conv1.weight": adapt_input_conv(own["stem.conv1.weight"].shape[1], w)})
    missing = [k for k in own if k not in state and not k.startswith("head.")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        try:
            file_arch = _describe(infer_config(state))
        except ValueError:
            file_arch = "an SMT whose architecture cannot be read"
        try:
            model_arch = _describe(infer_config(own))
        except ValueError:
            model_arch = type(model).__name__
        lines = [f"{path}: holds {file_arch} weights but the model is {model_arch}. Build the matching model "
                 f"(smt.create_model_from_checkpoint(path) reads the architecture from the file)."]
        if unexpected:
            lines.append(f"  unexpected keys (in the file, not in the model), {len(unexpected)}: {_group(unexpected)}")
        if missing:
            lines.append(f"  missing keys (in the model, not in the file), {len(missing)}: {_group(missing)}")
        if wrong:
            shown = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3])
            more = ", ..." if len(wrong) > 3 else ""
            lines.append(f"  shape mismatches (file vs model), {len(wrong)}: {shown}{more}")
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(state, strict=False)


def load_weights(model: nn.Module, path: os.PathLike) -> None:
    """Load a checkpoint file (any format `read_checkpoint` reads) into `model`.

    A classifier of another size (fine-tuning on other classes) is left as initialised; a first conv
    with another number of input channels is adapted with timm's `adapt_input_conv`.

    Raises:
        CheckpointMismatchError: The file is another variant; the message names both and lists the
            missing and unexpected keys by stage.
    """
    path = Path(path)
    _load_state(model, read_checkpoint(path), path)


def _msa_heads(config: Mapping[str, Any], variant: Optional[str]) -> tuple[int, ...]:
    if variant is not None:
        return tuple(VARIANTS[variant]["msa_heads"])
    heads = []
    for dim in config["embed_dims"]:
        h = max(1, dim // 32)
        while dim % h:
            h -= 1
        heads.append(h)
    return tuple(heads)


def create_model_from_checkpoint(path: os.PathLike, **kwargs: Any) -> SMT:
    """Build the SMT that a checkpoint file describes and load its weights.

    The architecture is read from the weights (`infer_config`): embed dims, depths, block types, SAM head
    counts and kernel sizes, SAA, MLP ratios, stem kernel, layer scale, number of classes. MSA head counts
    cannot be read from weights (q, kv and proj have the same shapes for any head count): when the
    architecture is a registered variant (`smt_tiny` ... `test_smt`) its head counts are used, otherwise
    head dim 32 (`msa_heads = dim // 32`, at least 1); pass `msa_heads=` to override.

    Args:
        path: Checkpoint file in any format `read_checkpoint` reads.
        **kwargs: Passed to `timm.create_model` over the inferred arguments (e.g. `num_classes=10` to
            re-initialise the classifier, `drop_path_rate=0.1`).

    Returns:
        The model (in training mode, as `timm.create_model` returns it), with `pretrained_cfg` of the
        matching variant (of `smt_tiny` for a custom architecture).
    """
    import timm

    path = Path(path)
    state = read_checkpoint(path)
    try:
        config = infer_config(state)
    except ValueError as e:
        raise CheckpointError(f"{path}: the SMT architecture cannot be read from the weights: {e}") from None
    variant = identify_variant(config)
    config["msa_heads"] = _msa_heads(config, variant)
    model = timm.create_model(variant or "smt_tiny", **{**config, **kwargs})
    _load_state(model, state, path)
    return model


def convert_checkpoint(src: os.PathLike, dst: os.PathLike, to_official: bool = False) -> dict[str, torch.Tensor]:
    """Write the weights of `src` to `dst` (`.safetensors`, else a `torch.save` file), exactly.

    Args:
        src: Any file `read_checkpoint` reads (e.g. an official release `.pth`).
        dst: Output path; `.safetensors` writes safetensors, any other suffix `torch.save`.
        to_official: Write the authors' key layout (`patch_embed1...`, `block1.0...`) so the weights go
            back into their code; a `.pth` is then `{"model": state_dict}` like the release files.
            Otherwise this project's timm layout, a bare state dict.

    Returns:
        The state dict written.
    """
    from .model import to_official_state_dict

    src, dst = Path(src), Path(dst)
    state = read_checkpoint(src)
    if to_official:
        state = to_official_state_dict(state)
    # own, contiguous memory per tensor: safetensors refuses shared storage, torch.save would keep views' bases
    state = {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in state.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(dst), metadata={"format": "pt", "layout": "official" if to_official else "timm"})
    else:
        torch.save({"model": state} if to_official else state, dst)
    return state
