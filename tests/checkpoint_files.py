"""Checkpoint files for the tests: shaped like the authors' release files, and tampered ones.

Shared by `test_checkpoint.py` and `test_inspect.py`; not a test module itself.
"""
import functools
import os
import subprocess
import sys
import types

import timm
import torch

from smt.model import to_official_state_dict
from smt.reference import fill_official_state_dict, load_reference

REFERENCE = load_reference()


def fake_yacs():
    """A throw-away `yacs.config` module whose CfgNode pickles like the real one (a dict with __dict__ state)."""
    mod, pkg = types.ModuleType("yacs.config"), types.ModuleType("yacs")

    class CfgNode(dict):
        def __init__(self, init=None):
            super().__init__(init or {})
            self.__dict__["__immutable__"] = True
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {"OLD": ("NEW", "renamed")}

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    mod.CfgNode, pkg.config = CfgNode, mod
    return pkg, mod


@functools.lru_cache(maxsize=None)
def filled_state(variant):
    """An official-layout state dict of `variant`, with the values the reference logits were measured on."""
    if variant == "test_smt":  # not released: its official-layout keys come from our converter
        return to_official_state_dict(timm.create_model("test_smt").state_dict())
    return fill_official_state_dict(REFERENCE[variant]["state_dict"], torch.float32)


def official_file(path, variant="test_smt", legacy=False, extra=None, state=None):
    """A file shaped like the authors' release: model, optimizer, scheduler, scaler, epoch, yacs config."""
    pkg, mod = fake_yacs()
    sys.modules["yacs"], sys.modules["yacs.config"] = pkg, mod
    try:
        state = dict(state if state is not None else filled_state(variant))
        param = torch.nn.Parameter(torch.ones(4))
        opt = torch.optim.AdamW([param], lr=1e-3)
        param.grad = torch.ones(4)
        opt.step()
        config = mod.CfgNode({"MODEL": mod.CfgNode({"TYPE": "smt", "NAME": variant}), "DATA": mod.CfgNode(
            {"IMG_SIZE": 224, "INTERPOLATION": "bicubic"})})
        obj = {"model": state, "optimizer": opt.state_dict(), "lr_scheduler": {"last_epoch": 300, "t_initial": 300},
               "max_accuracy": 82.2, "scaler": {"scale": 65536.0, "_growth_tracker": 10}, "epoch": 299,
               "config": config, **(extra or {})}
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        del sys.modules["yacs"], sys.modules["yacs.config"]
    return state


class Marker:
    """Pickles as a call that creates the file `path` (through `os.system`, `eval` or `subprocess.call`)."""

    def __init__(self, path, how):
        self.path, self.how = str(path), how

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch {self.path}",)
        if self.how == "eval":
            return eval, (f"__import__('pathlib').Path({self.path!r}).touch()",)
        return subprocess.call, (["touch", self.path],)
