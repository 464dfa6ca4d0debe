"""A safe reader for PyTorch checkpoint files: zip and legacy `torch.save` pickles, and safetensors.

`torch.load(weights_only=False)` runs whatever a tampered file asks for, and `weights_only=True` refuses
files that pickle anything beyond tensors and containers, such as a training script's config object. This
module reads such files with an allow-list instead:

- It reads PyTorch's zip format and its older ("legacy") pickle format itself and hands the pickle to a
  restricted `pickle.Unpickler` that never imports anything. Tensors are rebuilt from their storages by
  this module's own code; only containers, numbers, strings, `collections.OrderedDict`, `set`, `frozenset`,
  `complex`, `slice`, `bytearray`, `torch.Size`, `torch.device` and torch dtypes are created.
- Objects of other classes (a yacs `CfgNode`, `argparse.Namespace`, ...) become inert `UnknownObject`
  placeholders that keep their pickled items and state; the class is never imported (yacs need not be
  installed). Pickle creates such objects with its instantiation opcode, which calls nothing.
- A file that asks to *call* anything outside the allow-list (`os.system`, `builtins.eval`,
  `subprocess.Popen`, any `__reduce__` trick) is refused with `UnsafeCheckpointError` before anything
  from it runs.
- What is not a checkpoint at all (an empty or truncated file, a directory, a text or HTML page saved in
  place of a download, a Git LFS pointer, a TorchScript archive, a plain pickle) gets a `CheckpointError`
  that says so.

`open_checkpoint` unpickles a file and leaves its tensors as `TensorRef` (shape and dtype, no data read), so
a caller reads the data of the tensors it keeps only; `safe_load` reads everything. Nothing here knows
about a particular model: it serves any PyTorch checkpoint, and imports only the standard library and torch
(and safetensors, for safetensors files).
"""
from __future__ import annotations

import _compat_pickle
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Optional

import torch

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "UnknownObject", "TensorRef", "CheckpointFile", "FORMATS",
    "open_checkpoint", "safe_load",
]

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".tar")


class CheckpointError(ValueError):
    """A file that cannot be read as weights; the message names the path and what was wrong."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks to call something outside the allow-list: it is not a plain checkpoint."""


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


@cache
def _placeholder(module: str, name: str) -> type:
    return _InertMeta(name, (UnknownObject,), {"pickled_class": f"{module}.{name}", "__module__": __name__})


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


class TensorRef:
    """A tensor of the file, not read yet: its shape and dtype, and where its data lies.

    `CheckpointFile.materialise` reads it; `shape`, `dtype`, `numel` and `nbytes` need no data.
    """

    __slots__ = ("storage", "offset", "size", "stride", "dtype", "requires_grad")

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple, dtype: torch.dtype,
                 requires_grad: bool):
        if not isinstance(storage, _StorageRef):
            raise _Corrupt(f"a tensor refers to {type(storage).__name__} instead of its stored data")
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)
        self.dtype, self.requires_grad = dtype, bool(requires_grad)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)

    @property
    def numel(self) -> int:
        return math.prod(self.size)

    @property
    def nbytes(self) -> int:
        """Bytes of its elements (tensors that share a storage each count their own)."""
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


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
    return TensorRef(storage, storage_offset, size, stride, dtype, False)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _no_metadata(metadata)
    dtype = storage.dtype if isinstance(storage, _StorageRef) else None
    return TensorRef(storage, storage_offset, size, stride, dtype, requires_grad)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _no_metadata(metadata)
    if not isinstance(dtype, torch.dtype):
        raise _Corrupt(f"tensor dtype is {type(dtype).__name__}")
    return TensorRef(storage, storage_offset, size, stride, dtype, requires_grad)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, TensorRef):
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

#: The formats `open_checkpoint` reads, by `CheckpointFile.format`.
FORMATS = {
    "zip": "PyTorch zip archive (torch.save, PyTorch 1.6 and later)",
    "legacy": "PyTorch legacy pickle (torch.save before PyTorch 1.6)",
    "safetensors": "safetensors",
}


class CheckpointFile:
    """An opened checkpoint file: the object it holds, its tensors as `TensorRef` until they are read.

    Use it as a context manager (or call `close`). `obj` is what the file pickles, with the same
    placeholders `safe_load` gives but with `TensorRef` in place of every tensor; a safetensors file
    holds a dict of tensors (read already). `metadata` is a safetensors file's header metadata (None for
    other formats).
    """

    format: str = "?"

    def __init__(self, path: Path):
        self.path = path
        self.obj: Any = None
        self.metadata: Optional[dict[str, str]] = None
        self._cache: dict[Any, torch.Tensor] = {}
        self._swap = False

    def __enter__(self) -> CheckpointFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _raw(self, ref: _StorageRef) -> bytes:  # overridden per format
        raise NotImplementedError

    def close(self) -> None:
        self._cache.clear()

    def materialise(self, obj: Any) -> Any:
        """`obj` (the file's `obj` or a part of it) with every `TensorRef` replaced by its tensor.

        Containers are rebuilt, placeholders kept (and filled in place).

        Raises:
            UnsafeCheckpointError: The data asks for something outside the allow-list; nothing ran.
            CheckpointError: The tensor data is truncated or corrupt.
        """
        try:
            return self._materialise(obj)
        except _Refused as e:
            raise UnsafeCheckpointError(f"{self.path}: not a plain checkpoint: it would {e.what}; nothing from the "
                                        f"file was run") from None
        except (_Corrupt, zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:
            detail = f"{type(e).__name__}: {e}" if not isinstance(e, _Corrupt) else str(e)
            raise CheckpointError(f"{self.path}: the file is truncated or corrupt ({detail}); download or save it "
                                  f"again") from None

    def _storage(self, ref: _StorageRef) -> torch.Tensor:
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

    def _tensor(self, ref: TensorRef) -> torch.Tensor:
        dtype = ref.dtype or ref.storage.dtype
        flat = self._storage(ref.storage)
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

    def _materialise(self, obj: Any) -> Any:
        if isinstance(obj, TensorRef):
            return self._tensor(obj)
        if isinstance(obj, UnknownObject):
            for k in list(obj):
                obj[k] = self._materialise(obj[k])
            obj.__dict__["pickled_state"] = self._materialise(obj.pickled_state)
            obj.__dict__["pickled_list"] = [self._materialise(v) for v in obj.pickled_list]
            return obj
        if isinstance(obj, dict):
            out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
            for k, v in obj.items():
                out[k] = self._materialise(v)
            return out
        if isinstance(obj, list):
            return [self._materialise(v) for v in obj]
        if isinstance(obj, tuple) and not isinstance(obj, torch.Size):
            return tuple(self._materialise(v) for v in obj)
        return obj


class _ZipFile(CheckpointFile):
    format = "zip"

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


class _LegacyFile(CheckpointFile):
    """PyTorch's format before 1.6: magic, protocol, sys info, the object, storage keys, then raw storages."""

    format = "legacy"

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


class _SafetensorsFile(CheckpointFile):
    """A safetensors file, read at once (its format holds tensors only): `obj` is a dict of tensors."""

    format = "safetensors"

    def __init__(self, path: Path, head: bytes, size: int):
        super().__init__(path)
        (header_len,) = struct.unpack("<Q", head[:8])
        if 8 + header_len > size:
            raise _Corrupt(f"safetensors header of {header_len} bytes but the file has {size}")
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            self.obj = load_file(str(path))
            with safe_open(str(path), "pt") as f:
                self.metadata = f.metadata()
        except (SafetensorError, json.JSONDecodeError) as e:
            raise _Corrupt(f"safetensors: {e}") from None


def open_checkpoint(path: os.PathLike) -> CheckpointFile:
    """Open a checkpoint file: detect its format and unpickle it with the allow-list; no tensor data is read.

    Args:
        path: A `torch.save` file (zip or legacy format) or a `.safetensors` file.

    Returns:
        The opened file (a context manager): `obj`, what the file holds, with every tensor as a
        `TensorRef`; `format`, a key of `FORMATS`.

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated, corrupt, a directory, or not a checkpoint at all; the message
            says which.
    """
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
            return _ZipFile(path)
        if head[:1] == b"\x80" and len(head) >= 2 and head[1] <= pickle.HIGHEST_PROTOCOL:
            return _LegacyFile(path)
        text = _describe_text(path, head)
        if text:
            raise CheckpointError(text)
        if len(head) >= 9 and head[8:9] == b"{":
            return _SafetensorsFile(path, head, size)
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


def safe_load(path: os.PathLike) -> Any:
    """Everything in a checkpoint file, unpickled with the allow-list (see the module docstring).

    Tensors come back as CPU tensors; objects of classes outside the allow-list come back as
    `UnknownObject` placeholders (e.g. a pickled yacs `CfgNode`).

    Raises:
        FileNotFoundError: No file at `path`.
        UnsafeCheckpointError: The file asks to call something outside the allow-list; nothing ran.
        CheckpointError: Empty, truncated, corrupt, or not a checkpoint at all.
    """
    with open_checkpoint(path) as file:
        return file.materialise(file.obj)
