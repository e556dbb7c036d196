"""Which accelerators are really usable, so engines pick providers without warnings or guesses.

onnxruntime-gpu lists the CUDA provider even on a machine with no GPU, and then warns when a
session asks for it; here a GPU counts only when the CUDA driver reports a device AND a tiny
onnxruntime session really runs on the CUDA provider.
"""

import ctypes
import functools


@functools.cache
def cuda_device_count():
    """Devices the CUDA driver sees; 0 when there is no driver or no device."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def probe_model():
    """A one-node ONNX model (serialized) that any onnxruntime of this stack can load."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    # onnx writes its newest IR version by default, which an older onnxruntime refuses.
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


@functools.cache
def onnx_cuda_usable():
    """True when an onnxruntime session really runs on CUDAExecutionProvider here."""
    import onnxruntime as ort

    if cuda_device_count() == 0 or "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(
            probe_model(), options,
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        )
    except Exception:
        return False
    return "CUDAExecutionProvider" in session.get_providers()


def onnx_providers():
    """The onnxruntime providers to ask for, best first, all of them really usable."""
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if onnx_cuda_usable() else ["CPUExecutionProvider"]
