"""Checks of what a user passes on a command line (or to a widget), run before any work.

Every check raises `InputError(option, message)`: one line naming the option, what is wrong and the fix
(`--batch-size 0: use at least 1`). `Checks` runs several and reports them all at once (`InputErrors`), so a
user fixes every input in one go; `cli_errors` turns them into exit code 2 and one line each on stderr, with
no traceback unless `--debug`. The rules for each kind of input live here once: the model name
(`check_model_name`), a checkpoint file, an image folder, a class-folder dataset, a number's range, an
output file or folder. `viz.validation` adds the checks that only the analysis commands need.

Nothing here computes anything: a check reads a file's header or a folder's listing, never runs a model.
"""
from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TypeVar

__all__ = ["IMAGE_EXTENSIONS", "InputError", "InputErrors", "Checks", "cli_errors", "check_range",
           "check_model_name", "check_checkpoint", "list_image_files", "check_image_folder", "check_class_folders",
           "check_output_file", "check_output_folder", "check_choice"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

T = TypeVar("T")


class InputError(ValueError):
    """One bad input: the option, what is wrong, and the fix, on one line."""

    def __init__(self, option: Optional[str], message: str):
        self.option = option
        super().__init__(f"{option}: {message}" if option else message)


class InputErrors(ValueError):
    """Several bad inputs, found together (one line each)."""

    def __init__(self, errors: Sequence[InputError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class Checks:
    """Runs checks, keeping every `InputError`; `done()` raises them together (`InputErrors`)."""

    def __init__(self):
        self.errors: list[InputError] = []

    def __call__(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> Optional[T]:
        try:
            return check(*args, **kwargs)
        except InputErrors as e:
            self.errors += e.errors
        except InputError as e:
            self.errors.append(e)
        return None

    def add(self, option: Optional[str], message: str) -> None:
        self.errors.append(InputError(option, message))

    def done(self) -> None:
        if self.errors:
            raise InputErrors(self.errors)


@contextmanager
def cli_errors(debug: bool = False) -> Iterator[list[int]]:
    """For a command's `main`: bad input -> one line per problem on stderr and exit code 2, no traceback.

    `InputError(s)`, `smt.checkpoint.CheckpointError` (a file that is not usable weights) and a missing file
    exit with 2;
    any other `OSError`, `ValueError` or `RuntimeError` with 1, as one line. With `debug` the exception
    propagates with its traceback. The yielded list holds the exit code (empty when nothing was raised).
    """
    from .reader import CheckpointError

    code: list[int] = []
    try:
        yield code
    except (InputError, InputErrors, CheckpointError, OSError, ValueError, RuntimeError) as e:
        if debug:
            raise
        bad_input = isinstance(e, (InputError, InputErrors, CheckpointError, FileNotFoundError))
        lines = str(e).splitlines() or [type(e).__name__]
        if not bad_input and isinstance(e, (OSError, RuntimeError)):
            lines[0] = f"{type(e).__name__}: {lines[0]}"
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        if not bad_input:
            print("error: (run again with --debug for the traceback)", file=sys.stderr)
        code.append(2 if bad_input else 1)


# ---- numbers and choices ----------------------------------------------------------------------------

def check_range(value: Optional[float], option: str, low: Optional[float] = None, high: Optional[float] = None,
                *, low_open: bool = False, what: str = "") -> Optional[float]:
    """`value` within [low, high] (`low_open`: above `low`); None passes (the option was not given)."""
    if value is None:
        return None
    if value != value:  # NaN
        raise InputError(option, f"nan is not a number; give a value{_bounds(low, high, low_open)}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise InputError(option, f"{value:g} is out of range; give a value{_bounds(low, high, low_open)}"
                         + (f" ({what})" if what else ""))
    return value


def _bounds(low: Optional[float], high: Optional[float], low_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f" {'above' if low_open else 'of at least'} {low:g}"
    return f" of at most {high:g}" if high is not None else ""


def check_choice(value: str, option: str, choices: Sequence[str], what: str = "value") -> str:
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InputError(option, f"unknown {what} {value!r}; {hint}choose one of {', '.join(choices)}")
    return value


# ---- the model name ---------------------------------------------------------------------------------

def check_model_name(name: str, option: str = "--model", *, demo_names: bool = True) -> str:
    """`name` is a model the commands can build: a shipped demo model (when `demo_names`) or a timm name
    (SMT variants registered; a pretrained tag such as `smt_large.in22k_ft_in1k_384` allowed).

    This is the one place a model name is checked; returns the name.
    """
    import timm

    from . import model as _registers_smt  # noqa: F401
    from .demo import DEMO_MODELS

    if not name or not name.strip():
        raise InputError(option, "empty model name; give a timm name (smt_tiny) or a demo model (main)")
    if name in DEMO_MODELS:
        if demo_names:
            return name
        variant, _ = DEMO_MODELS[name]
        raise InputError(option, f"{name} is a demo model, which this command does not take by name; give "
                                 f"--model {variant} --checkpoint data/demo/{Path(_demo_file(name)).name}")
    if timm.is_model(name) or timm.is_model(name.split(".")[0]):
        return name
    pool = (list(DEMO_MODELS) if demo_names else []) + timm.list_models()
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    demos = f"a demo model ({', '.join(DEMO_MODELS)}) or " if demo_names else ""
    raise InputError(option, f"unknown model {name!r}; {hint}give {demos}a timm model name (smt_tiny, "
                             f"resnet50; `timm.list_models('smt*')` lists them)")


def _demo_file(name: str) -> Path:
    from .demo import demo_weights_path

    return demo_weights_path(name)


# ---- files ------------------------------------------------------------------------------------------

def _existing_file(path: os.PathLike, option: str, what: str, fix: str) -> Path:
    p = Path(path)
    if not str(path).strip():
        raise InputError(option, f"empty path; {fix}")
    if p.is_dir():
        raise InputError(option, f"{p} is a folder, not a {what}; {fix}")
    if not p.exists():
        raise InputError(option, f"{p} does not exist; {fix}")
    if not p.is_file():
        raise InputError(option, f"{p} is not a regular file; {fix}")
    if not os.access(p, os.R_OK):
        raise InputError(option, f"{p} is not readable (permissions); {fix}")
    return p


def check_checkpoint(path: Optional[os.PathLike], option: str = "--checkpoint") -> Optional[Path]:
    """`path` is a weights file `smt.checkpoint` reads: an SMT release `.pth`, a state dict, `.safetensors`.

    Reads the file's structure (no tensor data, nothing from the file runs). Whether the weights fit the
    model is known only when the model is built; that error names the option too (`cli_errors`).
    """
    if path is None:
        return None
    from .checkpoint import locate_weights
    from .reader import CheckpointError, open_checkpoint

    fix = "give a weights file (an SMT release .pth, a state dict .pth, or .safetensors)"
    p = _existing_file(path, option, "weights file", fix)
    try:
        with open_checkpoint(p) as f:
            locate_weights(p, f.obj)
    except CheckpointError as e:
        raise InputError(option, str(e)) from None  # the reader's message names the file, the problem, the fix
    return p


def list_image_files(folder: os.PathLike) -> list[Path]:
    """Files under `folder` (recursively, sorted by path) with an image extension."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _first_readable(files: Sequence[Path]) -> Optional[Path]:
    from .images import UNREADABLE, open_rgb

    for f in files:
        try:
            open_rgb(f)
            return f
        except UNREADABLE:
            continue
    return None


def check_image_folder(folder: Optional[os.PathLike], option: str = "--images") -> Optional[list[Path]]:
    """`folder` is a folder holding at least one readable image (files are tried in order until one reads).

    Returns its image files (sorted), unreadable ones included: they are skipped, and named, by the command.
    """
    if folder is None:
        return None
    p = Path(folder)
    fix = f"give a folder of images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}; sub-folders are searched)"
    if not str(folder).strip():
        raise InputError(option, f"empty path; {fix}")
    if p.is_file():
        raise InputError(option, f"{p} is a file, not a folder; {fix}")
    if not p.is_dir():
        raise InputError(option, f"{p} does not exist; {fix}")
    files = list_image_files(p)
    if not files:
        raise InputError(option, f"no image files under {p}; {fix}")
    if _first_readable(files) is None:
        raise InputError(option, f"none of the {len(files)} image files under {p} can be read (e.g. {files[0].name});"
                                 f" {fix}")
    return files


def check_class_folders(root: os.PathLike, option: str = "--data") -> list[Path]:
    """`root` holds one sub-folder of images per class (ImageFolder layout) with at least one readable image."""
    p = Path(root)
    fix = "give a folder with one sub-folder of images per class (ImageNet val: n01440764/ ... in sorted order)"
    if p.is_file():
        raise InputError(option, f"{p} is a file, not a folder; {fix}")
    if not p.is_dir():
        raise InputError(option, f"{p} does not exist; {fix}")
    classes = sorted(d for d in p.iterdir() if d.is_dir())
    if not classes:
        loose = list_image_files(p)
        what = f"holds {len(loose)} images but no class sub-folders" if loose else "has no class sub-folders"
        raise InputError(option, f"{p} {what}; {fix}")
    files = [f for d in classes for f in list_image_files(d)]
    if not files:
        raise InputError(option, f"the {len(classes)} class folders under {p} hold no image files; {fix}")
    if _first_readable(files) is None:
        raise InputError(option, f"none of the {len(files)} image files under {p} can be read; {fix}")
    return files


def _writable_parent(p: Path, option: str, fix: str) -> None:
    """The nearest existing ancestor of `p` is a writable folder (the command creates what is missing)."""
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(option, f"{parent} is a file, so {p} can not be created; {fix}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(option, f"{parent} is not writable; {fix}")


def check_output_file(path: os.PathLike, option: str = "--out", *, overwrite: bool = False,
                      example: str = "result.pt") -> Path:
    """`path` can be written as a file: not a folder, its folder writable, not an existing file unless
    `overwrite`."""
    p = Path(path)
    fix = f"give a file path such as {p / example if p.is_dir() else example}"
    if not str(path).strip():
        raise InputError(option, f"empty path; {fix}")
    if p.is_dir():
        raise InputError(option, f"{p} is a folder; the output is one file: {fix}")
    if p.exists() and not overwrite:
        raise InputError(option, f"{p} exists; pass --overwrite to replace it, or choose another path")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(option, f"{p} is not writable; choose another path")
    _writable_parent(p, option, "choose a path in a folder you can write")
    return p


def check_output_folder(path: os.PathLike, option: str = "--out", *, files: Sequence[str] = (),
                        overwrite: bool = False) -> Path:
    """`path` is (or can be created as) a writable folder, and none of `files` (names inside it) exists
    unless `overwrite`."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(option, "empty path; give an output folder")
    if p.exists() and not p.is_dir():
        raise InputError(option, f"{p} is a file; the output is a folder: give a folder path (created if missing)")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise InputError(option, f"{p} is not writable; choose a folder you can write")
        existing = [f for f in files if (p / f).exists()]
        if existing and not overwrite:
            shown = ", ".join(existing[:4]) + (f" and {len(existing) - 4} more" if len(existing) > 4 else "")
            raise InputError(option, f"{p} already holds {shown}; pass --overwrite to replace them, or choose "
                                     f"another folder")
    else:
        _writable_parent(p, option, "choose a folder you can write")
    return p
