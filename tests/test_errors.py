import json

import pytest
import torch

from engine.errors import Cancelled, ErrorKind, InputError, classify, describe, is_retryable

try:
    import pynvml
except ImportError:  # pragma: no cover
    pynvml = None

InterruptProcessingException = type("InterruptProcessingException", (Exception,), {})


class SubInterrupt(InterruptProcessingException):
    pass


CASES = [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), ErrorKind.OOM),
    (MemoryError(), ErrorKind.OOM),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), ErrorKind.OOM),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 4611686018427387904 bytes"), ErrorKind.OOM),
    (RuntimeError("MPS backend out of memory"), ErrorKind.OOM),
    (RuntimeError("Failed to allocate 512 bytes"), ErrorKind.OOM),
    (RuntimeError("not enough memory: you tried to allocate 8GB"), ErrorKind.OOM),
    (RuntimeError("CUDA error: out of memory"), ErrorKind.OOM),  # OOM beats the "CUDA error" marker
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), ErrorKind.OOM),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), ErrorKind.DRIVER),
    (RuntimeError("CUDNN_STATUS_EXECUTION_FAILED"), ErrorKind.DRIVER),
    (RuntimeError("CUDA error: unspecified launch failure"), ErrorKind.DRIVER),
    (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm(...)`"), ErrorKind.DRIVER),
    (RuntimeError("CUDA error: device-side assert triggered"), ErrorKind.DRIVER),
    (RuntimeError("CUDA error: misaligned address"), ErrorKind.DRIVER),
    (RuntimeError("cudaErrorLaunchFailure"), ErrorKind.DRIVER),
    (RuntimeError("CUDA error: an illegal instruction was encountered"), ErrorKind.DRIVER),
    (InputError("target fps must be positive"), ErrorKind.INPUT),
    (KeyboardInterrupt(), ErrorKind.INTERRUPT),
    (Cancelled(), ErrorKind.INTERRUPT),
    (InterruptProcessingException(), ErrorKind.INTERRUPT),
    (SubInterrupt(), ErrorKind.INTERRUPT),
    (ValueError("bad value"), ErrorKind.OTHER),
    (RuntimeError("The size of tensor a (3) must match the size of tensor b (4)"), ErrorKind.OTHER),
    (KeyError("flow"), ErrorKind.OTHER),
]
if hasattr(torch, "AcceleratorError"):  # the type alone means a device fault
    CASES.append((torch.AcceleratorError("device fault"), ErrorKind.DRIVER))
if pynvml is not None:
    CASES.append((pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), ErrorKind.DRIVER))


@pytest.mark.parametrize("exc,kind", CASES, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.value)
def test_classification_table(exc, kind):
    assert classify(exc) is kind


def _raise_chain(make):
    try:
        make()
    except BaseException as e:  # noqa: BLE001 - we want whatever was raised
        return e
    raise AssertionError("nothing raised")


def _oom():
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def test_oom_wrapped_with_from_is_oom():
    def make():
        try:
            _oom()
        except RuntimeError as e:
            raise RuntimeError("tile 3 failed") from e
    assert classify(_raise_chain(make)) is ErrorKind.OOM


def test_oom_as_implicit_context_is_oom():
    def make():
        try:
            _oom()
        except RuntimeError:
            raise ValueError("cleanup failed")
    assert classify(_raise_chain(make)) is ErrorKind.OOM


def test_deep_wrapped_driver_error():
    def make():
        try:
            try:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            except RuntimeError as e:
                raise ValueError("flow failed") from e
        except ValueError as e:
            raise TypeError("node failed") from e
    assert classify(_raise_chain(make)) is ErrorKind.DRIVER


def test_suppressed_context_is_ignored():
    def make():
        try:
            _oom()
        except RuntimeError:
            raise ValueError("unrelated") from None
    assert classify(_raise_chain(make)) is ErrorKind.OTHER


def test_input_error_at_top_wins_over_oom_cause():
    def make():
        try:
            _oom()
        except RuntimeError as e:
            raise InputError("clip too long for RAM") from e
    assert classify(_raise_chain(make)) is ErrorKind.INPUT


def test_cancel_at_top_wins_over_oom_cause():
    def make():
        try:
            _oom()
        except RuntimeError as e:
            raise Cancelled() from e
    assert classify(_raise_chain(make)) is ErrorKind.INTERRUPT


def test_cancel_deeper_in_chain_still_not_retried():
    def make():
        try:
            raise KeyboardInterrupt()
        except KeyboardInterrupt:
            _oom()  # an OOM while unwinding a cancel must not trigger a retry
    exc = _raise_chain(make)
    assert isinstance(exc, torch.cuda.OutOfMemoryError)
    assert classify(exc) is ErrorKind.INTERRUPT


def test_input_error_at_top_wins_over_cancel_context():
    def make():
        try:
            raise KeyboardInterrupt()
        except KeyboardInterrupt:
            raise InputError("bad fps")
    assert classify(_raise_chain(make)) is ErrorKind.INPUT


def test_cyclic_chain_terminates():
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert classify(a) is ErrorKind.OTHER


def test_real_cpu_overallocation_is_oom():
    with pytest.raises(BaseException) as info:
        torch.empty(2 ** 62, dtype=torch.uint8)
    assert classify(info.value) is ErrorKind.OOM
    assert is_retryable(classify(info.value))


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_only_oom_and_driver_are_retryable(kind):
    assert is_retryable(kind) is (kind in (ErrorKind.OOM, ErrorKind.DRIVER))


def test_error_kind_is_json_string():
    assert json.dumps({"kind": ErrorKind.OOM}) == '{"kind": "oom"}'


def test_input_error_is_value_error_and_cancelled_is_not():
    assert issubclass(InputError, ValueError)
    assert not issubclass(Cancelled, ValueError)


def test_describe_keeps_first_line():
    exc = torch.cuda.OutOfMemoryError("\n  CUDA out of memory (tried to allocate 2.00 GiB)  \nGPU 0 has ...")
    assert describe(exc) == "CUDA out of memory (tried to allocate 2.00 GiB)"


def test_describe_trims_long_messages():
    text = describe(RuntimeError("x" * 1000))
    assert len(text) <= 200
    assert text.endswith("…")


def test_describe_names_bare_and_builtin_errors():
    assert describe(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert describe(KeyError("flow")) == "KeyError: 'flow'"
    assert describe(InputError("fps must be > 0")) == "fps must be > 0"
