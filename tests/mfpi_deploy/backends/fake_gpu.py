"""CPU stand-ins for `tensorrt` and `pycuda.driver`, enough to exercise our glue code.

They model only what our code relies on (names from the TensorRT 10/11 and pycuda docs):
device memory is numpy bytes behind integer "pointers"; async copies and execute_async_v3
are queued on a stream and run when an event recorded after them is synchronised (so a
missing synchronise shows up as stale output); the "engine" is the ONNX graph it was built
from, run with onnxruntime, with the profiles' shape limits enforced. They cannot prove the
real APIs behave so: the GPU tests do that.
"""

from __future__ import annotations

import importlib.machinery
import itertools
import json
import types
from enum import IntEnum

import numpy as np
import onnx

_ptrs = itertools.count(0x1000, 0x1000)
_memory: dict[int, np.ndarray] = {}
_streams: dict[int, Stream] = {}


def make_pycuda(name: str = "NVIDIA L4", cc: tuple[int, int] = (8, 9)) -> tuple[types.ModuleType, types.ModuleType]:
    pycuda = types.ModuleType("pycuda")
    drv = types.ModuleType("pycuda.driver")
    pycuda.driver = drv
    for m in (pycuda, drv):
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)

    class Error(Exception):
        pass

    class Context:
        depth = 0

        def push(self):
            Context.depth += 1

        def pop(self):
            assert Context.depth > 0, "pop without push"
            Context.depth -= 1

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def name(self):
            return name

        def compute_capability(self):
            return cc

        def retain_primary_context(self):
            return Context()

    class DeviceAllocation:
        def __init__(self, nbytes):
            self.ptr = next(_ptrs)
            _memory[self.ptr] = np.zeros(nbytes, np.uint8)

        def __int__(self):
            return self.ptr

        def free(self):
            del _memory[self.ptr]

    def _require_context():
        assert Context.depth > 0, "CUDA call without a current context"

    def htod(dest, src, stream):
        _require_context()
        view = src.view(np.uint8).reshape(-1)  # read when the copy runs, as a real async copy does
        stream.ops.append(lambda: _memory[int(dest)].__setitem__(slice(0, view.size), view))

    def dtoh(dest, src, stream):
        _require_context()
        view = dest.view(np.uint8).reshape(-1)
        stream.ops.append(lambda: view.__setitem__(slice(None), _memory[int(src)][: view.size]))

    class Event:
        def record(self, stream):
            self.stream, self.upto = stream, len(stream.ops)

        def synchronize(self):
            self.stream.run(self.upto)

    drv.Error, drv.Device, drv.Event, drv.Stream = Error, Device, Event, Stream
    drv.init = lambda: None
    drv.mem_alloc = lambda n: DeviceAllocation(int(n))
    drv.pagelocked_empty = lambda shape, dtype: np.zeros(shape, dtype)
    drv.memcpy_htod_async, drv.memcpy_dtoh_async = htod, dtoh
    drv.Context = Context
    return pycuda, drv


class Stream:
    def __init__(self):
        self.handle = next(_ptrs)
        self.ops: list = []
        self.done = 0
        _streams[self.handle] = self

    def run(self, upto):
        while self.done < upto:
            self.ops[self.done]()
            self.done += 1


def make_tensorrt(version: str = "10.9.0.34", error_levels: int = 0) -> types.ModuleType:
    """A stand-in for tensorrt; `error_levels` > 0 stands for a wrong engine: every output value that
    many uint8 levels brighter (saturating at 255) than the ONNX graph's."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.built: list[dict] = []  # what each build was asked for

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    trt.Logger = Logger
    trt.NetworkDefinitionCreationFlag = IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5})
    trt.MemoryPoolType = IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.TensorIOMode = IntEnum("TensorIOMode", {"INPUT": 1, "OUTPUT": 2})

    class Tensor:
        def __init__(self, name):
            self.name = name

    class Network:
        def __init__(self, flags):
            self.flags, self.path, self.inputs = flags, None, []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return Tensor(self.inputs[i])

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            model = onnx.load(path)
            self.network.path = path
            self.network.inputs = [i.name for i in model.graph.input]
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            assert all(a <= b <= c for a, b, c in zip(lo, opt, hi)), (name, lo, opt, hi)
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data) + b"+"

        def serialize(self):
            return self.data

    class Config:
        def __init__(self):
            self.profiles, self.pools, self.cache = [], {}, None

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile.shapes)
            return len(self.profiles) - 1

        def create_timing_cache(self, data):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            import base64

            with open(network.path, "rb") as f:  # a real plan holds the network, not a path to it
                graph = base64.b64encode(f.read()).decode()
            plan = {
                "onnx": network.path,
                "graph": graph,
                "flags": network.flags,
                "profiles": config.profiles,
                "workspace": config.pools.get(trt.MemoryPoolType.WORKSPACE),
                "timing_cache_in": config.cache.data.decode() if config.cache else None,
            }
            trt.built.append({k: v for k, v in json.loads(json.dumps(plan)).items() if k != "graph"})
            return json.dumps(plan).encode()

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses, self.shapes = engine, {}, {}
            self.active_optimization_profile = 0

        def set_optimization_profile_async(self, index, stream_handle):
            assert stream_handle in _streams
            self.active_optimization_profile = index
            return True

        def set_tensor_address(self, name, ptr):
            assert ptr in _memory
            self.addresses[name] = ptr
            return True

        def set_input_shape(self, name, shape):
            lo, _, hi = self.engine.plan["profiles"][self.active_optimization_profile][name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                raise AssertionError(f"{name} {shape} outside profile {self.active_optimization_profile} {lo}..{hi}")
            self.shapes[name] = tuple(shape)
            return True

        def execute_async_v3(self, stream_handle):
            shapes, addresses = dict(self.shapes), dict(self.addresses)

            def op():
                feeds = {}
                for i in self.engine.session.get_inputs():
                    dtype = np.float32 if i.type == "tensor(float)" else np.uint8
                    n = int(np.prod(shapes[i.name])) * np.dtype(dtype).itemsize
                    feeds[i.name] = _memory[addresses[i.name]][:n].view(dtype).reshape(shapes[i.name])
                out = self.engine.session.run(None, feeds)[0]
                if error_levels:
                    out = np.minimum(out.astype(np.int16) + error_levels, 255).astype(np.uint8)
                _memory[addresses["planes"]][: out.size] = out.reshape(-1)

            _streams[stream_handle].ops.append(op)
            return True

    class Engine:
        def __init__(self, plan):
            import onnxruntime as ort

            self.plan = plan
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            import base64

            self.session = ort.InferenceSession(
                base64.b64decode(plan["graph"]), opts, providers=["CPUExecutionProvider"]
            )
            self.names = [i.name for i in self.session.get_inputs()] + ["planes"]

        @property
        def num_io_tensors(self):
            return len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.OUTPUT if name == "planes" else trt.TensorIOMode.INPUT

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine(json.loads(bytes(data)))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


def install(
    monkeypatch,
    *,
    gpu: str = "NVIDIA L4",
    cc: tuple[int, int] = (8, 9),
    version: str = "10.9.0.34",
    error_levels: int = 0,
):
    """Put the fakes in sys.modules (undone by monkeypatch); returns the fake tensorrt module."""
    import sys

    pycuda, drv = make_pycuda(gpu, cc)
    trt = make_tensorrt(version, error_levels)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt
