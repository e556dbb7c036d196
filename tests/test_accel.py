import numpy as np
import onnxruntime as ort

from parley.appliance import accel


def test_the_gpu_probe_model_loads_in_this_onnxruntime():
    """If the probe cannot load, a GPU box would silently never use CUDA."""
    session = ort.InferenceSession(accel.probe_model(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.array([1.5], np.float32)})
    assert out.tolist() == [1.5]


def test_providers_are_only_what_really_runs_here():
    providers = accel.onnx_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == (accel.cuda_device_count() > 0 and accel.onnx_cuda_usable())
