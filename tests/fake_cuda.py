"""A pretend GPU for a machine without one: ``FakeCuda`` runs a ``device="cuda"`` run on the CPU while it tracks
which tensors would live on the GPU, and records every operation that a real CUDA run would refuse.

Why this design. The bug it must catch is a tensor made on the CPU meeting one on the run's device (``mat1 is on
cpu``) or a CPU generator drawing for a GPU tensor. On a CPU-only machine every tensor is on the CPU, so no
real error can happen; what can be done is to keep, beside each tensor, the device it *would* be on, following
torch's own rules, and to check every operation against them:

- a tensor is "on the GPU" when it was made with ``device=`` a CUDA device (every factory: ``zeros``,
  ``as_tensor``, ``randperm``...), moved there (``.to``/``.cuda``, ``Module.to`` through ``param.data =``), or
  computed from such tensors (the output of an operation follows its inputs, as in torch); ``.cpu()`` and
  ``.to("cpu")`` bring a copy back. Its ``.device`` then reads ``cuda:0`` (and ``is_cuda`` True), so code that
  places tensors by ``x.device`` does what it would do on a GPU; every device argument is then rewritten to
  the CPU before the real call;
- an operation is refused as a real GPU would refuse it: GPU and CPU tensors (of one element or more: a 0-dim
  CPU tensor is a scalar torch accepts) among its inputs (``copy_`` and the moves excepted, CPU indices of a GPU
  tensor allowed, a packed sequence's CPU lengths allowed as torch requires them), a CPU generator drawing for a
  GPU tensor, ``.numpy()`` of a GPU tensor. Each refusal is recorded with the project line that made it
  (``violations``) and the run goes on, so one run lists them all.

So ``clone_behaviour``'s ``policy.greedy(torch.as_tensor(test.states))`` — a CPU batch into a module whose
weights were moved to the GPU — is recorded at that line, exactly where CUDA raised, while the same code that
passes here passes on a GPU as far as placement goes (numerics and CUDA-only kernels are not simulated).
Patching ``torch.cuda.is_available`` lets ``vrb.train.run`` accept ``device="cuda"`` (it refuses it otherwise).
"""

from __future__ import annotations

import re
import traceback
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

PROJECT_FILE = re.compile(r".*?/((?:vrb|baselines|envs|tests)/.+\.py)$")  # a frame of the project's code
# Not checked for mixed devices: moves (cross-device by design), deepcopy (its memo holds anything), and torch's
# question whether a module's parameter may take a converted tensor's place.
UNCHECKED = {"to", "cpu", "cuda", "copy_", "type_as", "__deepcopy__", "_has_compatible_shallow_copy_type"}
IN_PLACE = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__"}
CPU_LENGTHS = {"_pack_padded_sequence", "_pad_packed_sequence", "lstm", "gru", "rnn_tanh", "rnn_relu"}
GETSET = type(torch.Tensor.grad)
GPU = torch.device("cuda", 0)


def _is_cuda(device: Any) -> bool:
    return device is not None and torch.device(device).type == "cuda"


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors of an argument: itself, or those of a list/tuple/dict (foreach lists, index tuples)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def project_line(depth: int = 3) -> str:
    """The innermost ``depth`` frames of the project's own code, innermost first: where the offending call was
    written and what called it."""
    chain = []
    for frame in reversed(traceback.extract_stack()):
        found = PROJECT_FILE.match(frame.filename)
        if found and "site-packages" not in frame.filename and frame.filename != __file__:
            chain.append(f"{found.group(1)}:{frame.lineno} in {frame.name}")
    return " <- ".join(chain[:depth]) or "outside the project"


class FakeCuda(TorchFunctionMode):
    """The mode (module docstring): ``with FakeCuda() as fake: ...`` then ``fake.violations``."""

    def __init__(self) -> None:
        super().__init__()
        self._gpu: dict[int, weakref.ref] = {}
        self.violations: dict[str, str] = {}  # project line -> what it did

    # -- the pretend placement --------------------------------------------------------------------------------

    def on_gpu(self, tensor: Any) -> bool:
        ref = self._gpu.get(id(tensor))
        return ref is not None and ref() is tensor

    def _place(self, tensor: torch.Tensor, gpu: bool) -> None:
        if gpu:
            self._gpu[id(tensor)] = weakref.ref(tensor)
        else:
            self._gpu.pop(id(tensor), None)

    def _refuse(self, what: str) -> None:
        self.violations.setdefault(project_line(), what)

    # -- torch's calls ----------------------------------------------------------------------------------------

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if isinstance(owner, GETSET):
            return self._attribute(func, owner.__name__, name, args)
        if name in ("numpy", "__array__") and args and self.on_gpu(args[0]):
            self._refuse(f"{name}() of a GPU tensor")
        if name in ("to", "cpu", "cuda"):
            return self._move(func, name, args, kwargs)
        explicit = kwargs.get("device")
        inputs = [t for value in (*args, *kwargs.values()) for t in _tensors(value)]
        in_place = name in IN_PLACE or (name.endswith("_") and not name.endswith("__"))
        if explicit is not None:
            gpu = _is_cuda(explicit)
            kwargs["device"] = "cpu"
        elif name in ("__deepcopy__", "type_as"):
            gpu = self.on_gpu(args[0 if name == "__deepcopy__" else 1])
        else:
            gpu = any(self.on_gpu(t) for t in inputs)
        if explicit is None:
            self._check_mix(name, args, inputs)
        generator = kwargs.get("generator")
        if gpu and generator is not None and generator.device.type == "cpu":
            self._refuse(f"{name}: a CPU generator draws for a GPU tensor")
        result = func(*args, **kwargs)
        if in_place:  # the tensors stay where they are
            return result
        return self._placed(result, gpu, {id(t): t for t in inputs})

    def _attribute(self, func, attribute: str, kind: str, args: tuple) -> Any:
        tensor = args[0]
        if kind == "__set__":
            result = func(*args)
            if attribute == "data":
                self._place(tensor, self.on_gpu(args[1]))
            return result
        if attribute == "device" and self.on_gpu(tensor):
            return GPU
        if attribute in ("is_cuda", "is_cpu"):
            return self.on_gpu(tensor) == (attribute == "is_cuda")
        result = func(*args)
        if isinstance(result, torch.Tensor) and self.on_gpu(tensor):
            self._place(result, True)  # .grad, .data, .T ... of a GPU tensor
        return result

    def _move(self, func, name: str, args: tuple, kwargs: dict) -> Any:
        tensor, rest = args[0], list(args[1:])
        target: bool | None = {"cpu": False, "cuda": True}.get(name)
        if name == "to":
            if "device" in kwargs:
                target, kwargs["device"] = _is_cuda(kwargs["device"]), "cpu"
            for i, value in enumerate(rest):
                if isinstance(value, str | torch.device):
                    target, rest[i] = _is_cuda(value), "cpu"
                elif isinstance(value, torch.Tensor):
                    target = self.on_gpu(value)
        if target is None:
            target = self.on_gpu(tensor)
        result = tensor if name == "cuda" else func(tensor, *rest, **kwargs)
        if result is tensor and target != self.on_gpu(tensor):
            result = tensor.clone()  # a move makes a new tensor; the original stays where it was
        self._place(result, target)
        return result

    def _check_mix(self, name: str, args: tuple, inputs: list[torch.Tensor]) -> None:
        if name in UNCHECKED or name in CPU_LENGTHS:
            return
        if name == "__getitem__":  # CPU indices of a GPU tensor are fine; GPU indices of a CPU one are not
            if not self.on_gpu(args[0]) and any(self.on_gpu(t) for t in _tensors(args[1:])):
                self._refuse("a CPU tensor indexed by GPU indices")
            return
        if name == "__setitem__":
            inputs = [args[0], *_tensors(args[2])] if any(True for _ in _tensors(args[1])) else [args[0]]
        gpu = [t for t in inputs if self.on_gpu(t)]
        cpu = [t for t in inputs if not self.on_gpu(t) and t.dim() > 0]
        if gpu and cpu:
            shapes = ", ".join(str(tuple(t.shape)) for t in cpu[:2])
            self._refuse(f"{name}: GPU and CPU tensors together (CPU: {shapes})")

    def _placed(self, result: Any, gpu: bool, inputs: dict[int, torch.Tensor]) -> Any:
        if isinstance(result, torch.Tensor):
            if inputs.get(id(result)) is result and self.on_gpu(result) != gpu:
                result = result.clone()  # e.g. as_tensor(cpu tensor, device="cuda") is a copy on a GPU
            self._place(result, gpu)
        else:
            for tensor in _tensors(result):  # (values, indices) and the like: new tensors
                self._place(tensor, gpu)
        return result

    def gpu_tensors_in(self, value: Any, where: str = "") -> list[str]:
        """Where ``value`` (a checkpoint's payload, say) holds tensors on the pretend GPU."""
        if isinstance(value, torch.Tensor):
            return [where or "."] if self.on_gpu(value) else []
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in self.gpu_tensors_in(v, f"{where}.{k}")]
        if isinstance(value, list | tuple):
            return [p for i, v in enumerate(value) for p in self.gpu_tensors_in(v, f"{where}[{i}]")]
        return []


@contextmanager
def fake_cuda() -> Iterator[FakeCuda]:
    """``FakeCuda`` active, ``torch.cuda.is_available()`` True, and every ``torch.save`` checked for tensors left
    on the pretend GPU (a checkpoint must load on a machine without one); all undone when the block ends."""
    mode = FakeCuda()
    real_save, real_deepcopy = torch.save, torch.nn.Parameter.__deepcopy__

    def checked_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        for where in mode.gpu_tensors_in(obj):
            mode.violations.setdefault(f"torch.save {where}", "a GPU tensor saved (checkpoints must be CPU)")
        real_save(obj, f, *args, **kwargs)

    def deepcopy_in_place(parameter: torch.nn.Parameter, memo: dict) -> torch.nn.Parameter:
        copied = real_deepcopy(parameter, memo)  # a Parameter is rebuilt where torch functions do not see it
        mode._place(copied, mode.on_gpu(parameter))
        return copied

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Parameter, "__deepcopy__", deepcopy_in_place)
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch, "save", checked_save)
        with mode:
            yield mode
