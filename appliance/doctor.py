"""`parley doctor`: is this machine ready to run the appliance? Each check says what to do if not."""

import contextlib
import os
import platform
import socket
import sqlite3
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from parley.appliance import accel
from parley.appliance.models.conversions import CONVERSIONS
from parley.appliance.models.fetch import model_state
from parley.appliance.models.manifest import load_manifest

PASS, WARN, FAIL = "pass", "warn", "fail"

@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: str
    detail: str

def run_checks(settings, purpose="demo"):
    """All checks; a model the given purpose needs is required, the others only reported."""
    checks = [_python(), _cython_core(), *_runtimes(), *_accelerators()]
    checks += _models(settings, purpose)
    checks += [_sqlite(settings), _run_dir(settings), *_ports(settings)]
    return checks

def _guard(area, name, probe):
    try:
        return probe()
    except Exception as exc:
        return Check(area, name, FAIL, f"{type(exc).__name__}: {exc}")

def _python():
    ok = sys.version_info >= (3, 11)
    return Check("platform", "python", PASS if ok else FAIL,
                 f"{platform.python_version()} ({sys.executable})" + ("" if ok else "; Parley needs 3.11 or newer"))

CORE_MODULES = ("codecs", "resample", "framing", "jitter", "vad", "endpointer", "bargein", "playout", "call_loop",
                "pacing")
"""The faces of the compiled core; each picks its compiled module or, if asked, the Python twin."""


def _cython_core():
    import importlib

    try:
        faces = [importlib.import_module(f"parley.core.{name}") for name in CORE_MODULES]
    except ImportError as exc:
        return Check("platform", "cython core", FAIL, f"not built ({exc})")
    twins = [name for name, face in zip(CORE_MODULES, faces) if not face.COMPILED]
    if twins:
        return Check("platform", "cython core", WARN,
                     f"PARLEY_NO_EXTENSIONS=1: running the pure-Python twins of {', '.join(twins)}")
    return Check("platform", "cython core", PASS, f"compiled: {', '.join(CORE_MODULES)}")


def _runtimes():
    def onnxruntime():
        import onnxruntime as ort

        build = "GPU build" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPU build"
        return Check("runtime", "onnxruntime", PASS,
                     f"{ort.__version__} ({build}); sessions use {', '.join(accel.onnx_providers())}")

    def sherpa():
        import sherpa_onnx

        return Check("runtime", "sherpa-onnx", PASS, f"{sherpa_onnx.__version__}")

    def llama():
        import llama_cpp

        offload = llama_cpp.llama_supports_gpu_offload()
        return Check("runtime", "llama-cpp-python", PASS,
                     f"{llama_cpp.__version__}; GPU offload {'built in' if offload else 'not built (CPU only)'}")

    return [_guard("runtime", "onnxruntime", onnxruntime), _guard("runtime", "sherpa-onnx", sherpa),
            _guard("runtime", "llama-cpp-python", llama)]

def _accelerators():
    devices = accel.cuda_device_count()
    if devices == 0:
        return [Check("accel", "gpu", PASS, "none seen: every engine runs on the CPU")]
    checks = [Check("accel", "gpu", PASS, f"{devices} CUDA device(s)")]
    if accel.onnx_cuda_usable():
        checks.append(Check("accel", "onnxruntime cuda", PASS, "CUDAExecutionProvider runs"))
    else:
        checks.append(Check("accel", "onnxruntime cuda", WARN,
                            "GPU present but CUDAExecutionProvider does not run (CUDA/cuDNN libraries?): CPU fallback"))
    checks.append(Check("accel", "sherpa-onnx cuda", WARN,
                        "the PyPI sherpa-onnx is a CPU build: STT/TTS fall back to the CPU "
                        "(build sherpa-onnx with -DSHERPA_ONNX_ENABLE_GPU=ON to use the GPU)"))
    return checks

def _load_stt(model_dir):
    import sherpa_onnx

    sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(model_dir / "tiny.en-encoder.onnx"), decoder=str(model_dir / "tiny.en-decoder.onnx"),
        tokens=str(model_dir / "tiny.en-tokens.txt"), num_threads=1,
    )
    return "sherpa-onnx Whisper loads"

def _load_tts(model_dir):
    import sherpa_onnx

    from parley.appliance.models.piper_voice import check_voice_dir

    props = check_voice_dir(model_dir)
    config = sherpa_onnx.OfflineTtsConfig(
        model=sherpa_onnx.OfflineTtsModelConfig(
            vits=sherpa_onnx.OfflineTtsVitsModelConfig(model=str(model_dir / "model.onnx"),
                                                       tokens=str(model_dir / "tokens.txt")),
            num_threads=1,
        )
    )
    tts = sherpa_onnx.OfflineTts(config)
    return f"sherpa-onnx VITS loads, {tts.sample_rate} Hz ({props['voice']})"

def _load_onnx(model_dir):
    import onnxruntime as ort

    (path,) = model_dir.glob("*.onnx")
    session = ort.InferenceSession(str(path), providers=accel.onnx_providers())
    return f"onnxruntime loads on {session.get_providers()[0]}"

def _load_llm(model_dir):
    import llama_cpp

    (path,) = model_dir.glob("*.gguf")
    with _native_stderr_silenced():
        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    n_vocab = llm.n_vocab()
    llm.close()
    return f"llama.cpp reads it: {n_vocab} tokens in the vocabulary"

@contextlib.contextmanager
def _native_stderr_silenced():
    """llama.cpp writes context warnings to fd 2 even with verbose=False; they would garble the table."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_recording(model_dir):
    (path,) = model_dir.glob("*.wav")
    with wave.open(str(path)) as w:
        return f"{w.getframerate()} Hz, {w.getnframes() / w.getframerate():.1f} s"

LOADERS = {"stt": _load_stt, "tts": _load_tts, "vad": _load_onnx, "eot": _load_onnx,
           "llm": _load_llm, "recording": _load_recording}

def _models(settings, purpose):
    try:
        manifest = load_manifest(settings.manifest_path, CONVERSIONS)
    except ValueError as exc:
        return [Check("models", "manifest", FAIL, str(exc))]
    checks = []
    for entry in manifest.models.values():
        needed = purpose in entry.purposes
        state = model_state(entry, settings.models_dir)
        if not state.ready:
            what = f"lacks {', '.join(state.missing)}" if state.missing else "not fetched by this manifest"
            checks.append(Check("models", entry.name, FAIL if needed else WARN,
                                f"{state.label}, {what}: run `parley models fetch --only {entry.name}`"))
            continue
        try:
            detail = LOADERS[entry.kind](settings.models_dir / entry.name)
            checks.append(Check("models", entry.name, PASS, detail))
        except Exception as exc:
            checks.append(Check("models", entry.name, FAIL,
                                f"present but does not load ({type(exc).__name__}: {exc}); "
                                f"run `parley models fetch --force --only {entry.name}`"))
    return checks

def _sqlite(settings):
    def probe():
        from parley.appliance.store import MigrationSet, Store

        with Store.open(settings.db_path) as store:
            applied = MigrationSet.packaged().applied(store.db)
            mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
            with store.transaction():
                store.db.execute("CREATE TEMP TABLE doctor_probe (x)")
        return Check("store", "sqlite", PASS,
                     f"{settings.db_path} writable, schema {applied[-1].number if applied else 0}, "
                     f"journal_mode={mode}, SQLite {sqlite3.sqlite_version}")

    return _guard("store", "sqlite", probe)


def _run_dir(settings):
    longest = len(str(settings.run_dir / "agent.sock"))
    if longest > 100:
        return Check("bus", "ipc sockets", FAIL,
                     f"{settings.run_dir} is too long for AF_UNIX socket paths ({longest} of 107 bytes): "
                     f"set var_dir in parley.toml or PARLEY_HOME to a shorter path, or bus_transport = 'tcp'")
    return Check("bus", "ipc sockets", PASS, f"{settings.run_dir}")

def _port_free(host, port, kind):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None

def _ports(settings):
    wanted = [("sip", settings.sip_port, socket.SOCK_DGRAM)]
    if settings.bus_transport == "tcp":
        wanted += [(f"bus +{i}", settings.bus_base_port + i, socket.SOCK_STREAM) for i in range(4)]
    checks = []
    for name, port, kind in wanted:
        proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
        error = _port_free(settings.bind_host, port, kind)
        where = f"{settings.bind_host}:{port}/{proto}"
        checks.append(Check("ports", name, PASS if error is None else FAIL,
                            f"{where} free" if error is None else f"{where} unavailable ({error.strerror}): "
                            f"stop what holds it or change the port in parley.toml"))
    return checks

def exit_code(checks):
    return 1 if any(c.status == FAIL for c in checks) else 0

