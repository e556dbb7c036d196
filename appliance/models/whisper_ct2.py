"""Whisper in CTranslate2 form -> sherpa-onnx's Whisper ONNX form, written straight from numpy.

The CTranslate2 directory (``model.bin``, ``config.json``, ``vocabulary.txt``) is what
faster-whisper loads. sherpa-onnx wants two ONNX graphs and a tokens file:

* ``{prefix}-encoder.onnx``: ``mel`` f32 [N, n_mels, T] -> ``n_layer_cross_k``,
  ``n_layer_cross_v`` f32 [n_text_layer, N, ceil(T/2), n_text_state]; the model's
  dimensions and special tokens ride along as metadata properties, which sherpa-onnx reads.
* ``{prefix}-decoder.onnx``: ``tokens`` i64 [N, n], ``in_n_layer_self_k_cache``,
  ``in_n_layer_self_v_cache`` f32 [n_text_layer, N, n_text_ctx, n_text_state], the two cross
  tensors and ``offset`` i64 [1] -> ``logits`` [N, n, n_vocab] and the two updated caches.
  The new tokens' keys and values land at cache positions [offset, offset + n); attention
  covers positions [0, offset + n), causal among the new tokens.
* ``{prefix}-tokens.txt``: ``<base64 of the token's bytes> <id>`` for every text token.

No torch: the graphs are assembled node by node with ``onnx.helper`` and the weights stay
float32. Each output is written under a temporary name and renamed into place, so an
interrupted conversion never leaves a file that looks complete.
"""

import base64
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "WhisperConversionError",
    "Ct2Model",
    "read_ct2_model",
    "read_ct2_variables",
    "convert_whisper_ct2",
    "gpt2_token_bytes",
]

CT2_BINARY_VERSION = 6
OPSET = 17
LAYER_NORM_EPS = 1e-5


class WhisperConversionError(ValueError):
    """The CTranslate2 Whisper input cannot be read or converted; the message says why."""


# --------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------

_CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}


@dataclass
class Ct2Model:
    """The parsed contents of a CTranslate2 ``model.bin``."""

    spec: str
    revision: int
    version: int
    variables: dict = field(default_factory=dict)
    """Name -> numpy array (float16 stays float16; bfloat16 becomes float32); aliases resolved."""
    aliases: dict = field(default_factory=dict)
    """Alias name -> target name, as stored."""


class _Cursor:
    def __init__(self, data, path):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what):
        raise WhisperConversionError(f"{self.path}: {what} (at byte {self.pos} of {len(self.data)})")

    def take(self, n, what):
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"file ends inside {what}: needs {n} more bytes, {len(self.data) - self.pos} left; truncated?")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt, what):
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.take(size, what))[0]

    def string(self, what):
        length = self.unpack("H", f"the length of {what}")
        if length == 0:
            self.fail(f"{what} has length 0 (a string includes its NUL)")
        raw = bytes(self.take(length, what))
        if raw[-1:] != b"\0":
            self.fail(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not UTF-8")


def _bf16_to_f32(raw, shape):
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def read_ct2_model(path):
    """Parse a CTranslate2 ``model.bin`` (binary version 6) into a :class:`Ct2Model`.

    Raises :class:`WhisperConversionError` for a missing, truncated or malformed file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WhisperConversionError(f"{path} does not exist") from None
    except OSError as exc:
        raise WhisperConversionError(f"{path} cannot be read: {exc}") from exc
    cur = _Cursor(memoryview(data), path)

    version = cur.unpack("I", "the binary version")
    if version != CT2_BINARY_VERSION:
        cur.fail(f"CTranslate2 binary version {version} is not supported (this reader handles {CT2_BINARY_VERSION})")
    spec = cur.string("the spec name")
    revision = cur.unpack("I", "the spec revision")
    num_vars = cur.unpack("I", "the variable count")
    if num_vars > 100_000:
        cur.fail(f"implausible variable count {num_vars}")

    variables = {}
    for index in range(num_vars):
        name = cur.string(f"the name of variable #{index}")
        rank = cur.unpack("B", f"the rank of {name}")
        if rank > 8:
            cur.fail(f"variable {name} has implausible rank {rank}")
        shape = tuple(cur.unpack("I", f"the shape of {name}") for _ in range(rank))
        code = cur.unpack("B", f"the dtype of {name}")
        if code not in _CT2_DTYPES:
            cur.fail(f"variable {name} has unknown dtype code {code}")
        nbytes = cur.unpack("I", f"the byte count of {name}")
        dtype = _CT2_DTYPES[code]
        itemsize = 2 if dtype == "bfloat16" else dtype.itemsize
        expected = int(np.prod(shape, dtype=np.int64)) * itemsize
        if nbytes != expected:
            cur.fail(f"variable {name} of shape {list(shape)} should hold {expected} bytes, header says {nbytes}")
        raw = cur.take(nbytes, f"the data of {name}")
        if dtype == "bfloat16":
            variables[name] = _bf16_to_f32(raw, shape)
        else:
            variables[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)

    num_aliases = cur.unpack("I", "the alias count")
    if num_aliases > 100_000:
        cur.fail(f"implausible alias count {num_aliases}")
    aliases = {}
    for index in range(num_aliases):
        alias = cur.string(f"alias #{index}")
        target = cur.string(f"the target of alias {alias}")
        aliases[alias] = target
    if cur.pos != len(data):
        cur.fail(f"{len(data) - cur.pos} unexpected bytes after the alias table")
    for alias, target in aliases.items():
        seen = {alias}
        while target in aliases and target not in seen:
            seen.add(target)
            target = aliases[target]
        if target not in variables:
            cur.fail(f"alias {alias} points at {target}, which is not a variable")
        variables[alias] = variables[target]
    return Ct2Model(spec=spec, revision=revision, version=version, variables=variables, aliases=aliases)


def read_ct2_variables(path):
    """Name -> numpy array for every variable in a CTranslate2 ``model.bin``, aliases resolved."""
    return read_ct2_model(path).variables


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------


def _byte_decoder():
    """GPT-2's printable-unicode stand-in for each byte, reversed: char -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


_BYTE_DECODER = _byte_decoder()


def gpt2_token_bytes(token):
    """The raw bytes behind a byte-level BPE vocabulary entry such as ``"Ġthe"`` -> ``b" the"``."""
    try:
        return bytes(_BYTE_DECODER[ch] for ch in token)
    except KeyError as exc:
        raise WhisperConversionError(f"vocabulary entry {token!r} has a character outside GPT-2's byte map: {exc}") from None


def _read_vocabulary(src_dir):
    txt = src_dir / "vocabulary.txt"
    js = src_dir / "vocabulary.json"
    if txt.is_file():
        text = txt.read_text(encoding="utf-8")
        # split on "\n" only: some entries hold characters str.splitlines() would break on
        vocab = text.split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        return vocab
    if js.is_file():
        try:
            vocab = json.loads(js.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise WhisperConversionError(f"{js} is not valid JSON: {exc}") from exc
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise WhisperConversionError(f"{js} should hold a JSON list of strings")
        return vocab
    raise WhisperConversionError(f"{txt} does not exist (nor vocabulary.json)")


# --------------------------------------------------------------------------------------
# Whisper weights
# --------------------------------------------------------------------------------------


@dataclass
class _Dims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class _Weights:
    """Typed access to the Whisper variables, with errors that name what is missing."""

    def __init__(self, variables, path):
        self.v = variables
        self.path = path

    def get(self, name, shape=None):
        if name not in self.v:
            raise WhisperConversionError(f"{self.path}: variable {name} is missing; not a Whisper model from CTranslate2?")
        arr = self.v[name]
        if shape is not None and tuple(arr.shape) != tuple(shape):
            raise WhisperConversionError(f"{self.path}: variable {name} has shape {list(arr.shape)}, expected {list(shape)}")
        if arr.dtype.kind != "f":
            raise WhisperConversionError(f"{self.path}: variable {name} is {arr.dtype}, expected floating point (quantized models are not supported)")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def scalar(self, name, default=None):
        if name not in self.v:
            if default is None:
                raise WhisperConversionError(f"{self.path}: scalar {name} is missing")
            return default
        return int(np.asarray(self.v[name]).reshape(-1)[0])

    def count_layers(self, stack):
        n = 0
        while f"{stack}/layer_{n}/self_attention/linear_0/weight" in self.v:
            n += 1
        if n == 0:
            raise WhisperConversionError(f"{self.path}: no {stack} layers found ({stack}/layer_0/... missing)")
        return n


def _dims(w):
    emb = w.v.get("decoder/embeddings/weight")
    conv1 = w.v.get("encoder/conv1/weight")
    enc_pos = w.v.get("encoder/position_encodings/encodings")
    dec_pos = w.v.get("decoder/position_encodings/encodings")
    for name, arr, rank in (
        ("decoder/embeddings/weight", emb, 2),
        ("encoder/conv1/weight", conv1, 3),
        ("encoder/position_encodings/encodings", enc_pos, 2),
        ("decoder/position_encodings/encodings", dec_pos, 2),
    ):
        if arr is None:
            raise WhisperConversionError(f"{w.path}: variable {name} is missing; not a Whisper model from CTranslate2?")
        if arr.ndim != rank:
            raise WhisperConversionError(f"{w.path}: variable {name} has rank {arr.ndim}, expected {rank}")
    dims = _Dims(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(enc_pos.shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=w.scalar("encoder/num_heads"),
        n_audio_layer=w.count_layers("encoder"),
        n_vocab=int(emb.shape[0]),
        n_text_ctx=int(dec_pos.shape[0]),
        n_text_state=int(emb.shape[1]),
        n_text_head=w.scalar("decoder/num_heads"),
        n_text_layer=w.count_layers("decoder"),
    )
    for state, heads, which in ((dims.n_audio_state, dims.n_audio_head, "encoder"), (dims.n_text_state, dims.n_text_head, "decoder")):
        if heads <= 0 or state % heads:
            raise WhisperConversionError(f"{w.path}: {which} width {state} does not split into {heads} heads")
    if dims.n_audio_state != dims.n_text_state:
        raise WhisperConversionError(f"{w.path}: encoder width {dims.n_audio_state} differs from decoder width {dims.n_text_state}")
    return dims


# --------------------------------------------------------------------------------------
# ONNX graph building
# --------------------------------------------------------------------------------------


class _Graph:
    """A tiny helper around onnx.helper: unique names, initializers, one call per node."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.inits = []
        self._n = 0
        self._consts = {}

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, hint, array):
        name = self.name(hint)
        array = np.asarray(array)
        if not array.flags.c_contiguous:  # (np.ascontiguousarray would turn a scalar into [1])
            array = np.ascontiguousarray(array)
        self.inits.append(self.numpy_helper.from_array(array, name))
        return name

    def const_i64(self, values):
        key = ("i64", tuple(values))
        if key not in self._consts:
            self._consts[key] = self.init("c", np.asarray(values, dtype=np.int64))
        return self._consts[key]

    def const_f32(self, value):
        key = ("f32", float(value))
        if key not in self._consts:
            self._consts[key] = self.init("c", np.asarray(value, dtype=np.float32))
        return self._consts[key]

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else list(outputs)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.name("n_" + op_type), **attrs))
        return outs[0] if len(outs) == 1 else outs

    # building blocks -----------------------------------------------------------------

    def gelu(self, x):
        # exact (erf) GELU, in the shape onnxruntime fuses into its Gelu kernel
        d = self.op("Div", [x, self.const_f32(np.sqrt(2.0))])
        e = self.op("Erf", [d])
        a = self.op("Add", [e, self.const_f32(1.0)])
        m = self.op("Mul", [x, a])
        return self.op("Mul", [m, self.const_f32(0.5)], hint="gelu")

    def layer_norm(self, x, gamma, beta):
        return self.op("LayerNormalization", [x, self.init("ln_g", gamma), self.init("ln_b", beta)], hint="ln", axis=-1, epsilon=LAYER_NORM_EPS)

    def linear(self, x, weight, bias=None, hint="lin"):
        """x @ weight.T (+ bias), with the weight stored pre-transposed for MatMul."""
        y = self.op("MatMul", [x, self.init(hint + "_wT", np.ascontiguousarray(weight.T))], hint=hint)
        if bias is not None:
            y = self.op("Add", [y, self.init(hint + "_b", bias)], hint=hint)
        return y

    def attention(self, q, k, v, heads, head_dim, mask=None):
        """Scaled dot-product attention over [N, T, D] tensors; q arrives already scaled."""
        split = self.const_i64([0, 0, heads, head_dim])
        qh = self.op("Transpose", [self.op("Reshape", [q, split])], perm=[0, 2, 1, 3])
        kh = self.op("Transpose", [self.op("Reshape", [k, split])], perm=[0, 2, 3, 1])
        vh = self.op("Transpose", [self.op("Reshape", [v, split])], perm=[0, 2, 1, 3])
        scores = self.op("MatMul", [qh, kh], hint="scores")
        if mask is not None:
            scores = self.op("Add", [scores, mask], hint="scores")
        probs = self.op("Softmax", [scores], hint="probs", axis=-1)
        out = self.op("MatMul", [probs, vh])
        out = self.op("Transpose", [out], perm=[0, 2, 1, 3])
        return self.op("Reshape", [out, self.const_i64([0, 0, heads * head_dim])], hint="attn")

    def model(self, name, inputs, outputs, metadata=None):
        h = self.helper
        graph = h.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="parley.whisper_ct2")
        model.ir_version = 8
        for key, value in (metadata or {}).items():
            prop = model.metadata_props.add()
            prop.key = key
            prop.value = str(value)
        return model


def _split_qkv(w, prefix, d, scale):
    """The fused [3D, D] self-attention projection, query rows pre-scaled by d_head**-0.5.

    openai-whisper scales q and k by d_head**-0.25 each; folding both into q is the same
    product. CTranslate2 stores the (absent) key bias as zeros; keeping it is harmless.
    """
    weight = w.get(f"{prefix}/linear_0/weight", (3 * d, d)).copy()
    bias = w.get(f"{prefix}/linear_0/bias", (3 * d,)).copy()
    weight[:d] *= scale
    bias[:d] *= scale
    return weight, bias


def _encoder_graph(w, dims, metadata):
    from onnx import TensorProto

    g = _Graph()
    h = g.helper
    d = dims.n_audio_state
    heads = dims.n_audio_head
    head_dim = d // heads
    scale = float(head_dim) ** -0.5

    x = g.op(
        "Conv",
        ["mel", g.init("conv1_w", w.get("encoder/conv1/weight", (d, dims.n_mels, 3))), g.init("conv1_b", w.get("encoder/conv1/bias", (d,)))],
        kernel_shape=[3],
        pads=[1, 1],
    )
    x = g.gelu(x)
    x = g.op(
        "Conv",
        [x, g.init("conv2_w", w.get("encoder/conv2/weight", (d, d, 3))), g.init("conv2_b", w.get("encoder/conv2/bias", (d,)))],
        kernel_shape=[3],
        pads=[1, 1],
        strides=[2],
    )
    x = g.gelu(x)
    x = g.op("Transpose", [x], perm=[0, 2, 1])  # [N, T2, D]
    t2 = g.op("Shape", [x], start=1, end=2)
    pos = g.init("pos", w.get("encoder/position_encodings/encodings", (dims.n_audio_ctx, d)))
    x = g.op("Add", [x, g.op("Slice", [pos, g.const_i64([0]), t2, g.const_i64([0])])])

    for i in range(dims.n_audio_layer):
        p = f"encoder/layer_{i}"
        y = g.layer_norm(x, w.get(f"{p}/self_attention/layer_norm/gamma", (d,)), w.get(f"{p}/self_attention/layer_norm/beta", (d,)))
        wqkv, bqkv = _split_qkv(w, f"{p}/self_attention", d, scale)
        qkv = g.linear(y, wqkv, bqkv, hint=f"enc{i}_qkv")
        q, k, v = g.op("Split", [qkv, g.const_i64([d, d, d])], outputs=3, axis=-1)
        a = g.attention(q, k, v, heads, head_dim)
        a = g.linear(a, w.get(f"{p}/self_attention/linear_1/weight", (d, d)), w.get(f"{p}/self_attention/linear_1/bias", (d,)), hint=f"enc{i}_out")
        x = g.op("Add", [x, a])
        x = _ffn(g, w, x, f"{p}/ffn", d, f"enc{i}")

    x = g.layer_norm(x, w.get("encoder/layer_norm/gamma", (d,)), w.get("encoder/layer_norm/beta", (d,)))

    # every decoder layer's cross-attention keys and values from one MatMul: columns are
    # ordered [k_0 .. k_{L-1}, v_0 .. v_{L-1}], then reshaped to [2, L, N, T2, D]
    layers = dims.n_text_layer
    kv_w, kv_b = [], []
    for i in range(layers):
        kv_w.append(w.get(f"decoder/layer_{i}/attention/linear_1/weight", (2 * d, d)))
        kv_b.append(w.get(f"decoder/layer_{i}/attention/linear_1/bias", (2 * d,)))
    weight = np.concatenate([m[:d] for m in kv_w] + [m[d:] for m in kv_w], axis=0)
    bias = np.concatenate([b[:d] for b in kv_b] + [b[d:] for b in kv_b], axis=0)
    kv = g.linear(x, weight, bias, hint="cross_kv")
    kv = g.op("Reshape", [kv, g.const_i64([0, 0, 2, layers, d])])
    kv = g.op("Transpose", [kv], perm=[2, 3, 0, 1, 4])
    k, v = g.op("Split", [kv], outputs=2, axis=0)
    g.op("Squeeze", [k, g.const_i64([0])], outputs=["n_layer_cross_k"])
    g.op("Squeeze", [v, g.const_i64([0])], outputs=["n_layer_cross_v"])

    inputs = [h.make_tensor_value_info("mel", TensorProto.FLOAT, ["n_audio", dims.n_mels, "n_frames"])]
    outputs = [
        h.make_tensor_value_info(name, TensorProto.FLOAT, [layers, "n_audio", "n_audio_ctx", d])
        for name in ("n_layer_cross_k", "n_layer_cross_v")
    ]
    return g.model("whisper_encoder", inputs, outputs, metadata)


def _ffn(g, w, x, p, d, hint):
    y = g.layer_norm(x, w.get(f"{p}/layer_norm/gamma", (d,)), w.get(f"{p}/layer_norm/beta", (d,)))
    w0 = w.get(f"{p}/linear_0/weight")
    if w0.ndim != 2 or w0.shape[1] != d:
        raise WhisperConversionError(f"{w.path}: variable {p}/linear_0/weight has shape {list(w0.shape)}, expected [*, {d}]")
    hidden = w0.shape[0]
    y = g.linear(y, w0, w.get(f"{p}/linear_0/bias", (hidden,)), hint=f"{hint}_ffn0")
    y = g.gelu(y)
    y = g.linear(y, w.get(f"{p}/linear_1/weight", (d, hidden)), w.get(f"{p}/linear_1/bias", (d,)), hint=f"{hint}_ffn1")
    return g.op("Add", [x, y])


def _decoder_graph(w, dims):
    from onnx import TensorProto

    g = _Graph()
    h = g.helper
    d = dims.n_text_state
    heads = dims.n_text_head
    head_dim = d // heads
    scale = float(head_dim) ** -0.5
    layers = dims.n_text_layer

    emb = w.get("decoder/embeddings/weight", (dims.n_vocab, d))
    emb_name = g.init("embedding", emb)
    pos = g.init("pos", w.get("decoder/position_encodings/encodings", (dims.n_text_ctx, d)))

    n_tok = g.op("Shape", ["tokens"], start=1, end=2)  # [1]
    end = g.op("Add", ["offset", n_tok])  # [1]
    axis0 = g.const_i64([0])
    x = g.op("Gather", [emb_name, "tokens"], axis=0)  # [N, n, D]
    x = g.op("Add", [x, g.op("Slice", [pos, "offset", end, axis0])])

    # causal mask over absolute positions: new token i (at offset + i) sees cache slot j <= offset + i
    off_s = g.op("Squeeze", ["offset", axis0])
    end_s = g.op("Squeeze", [end, axis0])
    one = g.init("one", np.asarray(1, dtype=np.int64))
    zero = g.init("zero", np.asarray(0, dtype=np.int64))
    q_pos = g.op("Unsqueeze", [g.op("Range", [off_s, end_s, one]), g.const_i64([1])])  # [n, 1]
    k_pos = g.op("Range", [zero, end_s, one])  # [offset + n]
    future = g.op("Greater", [k_pos, q_pos])  # [n, offset + n]
    mask = g.op("Where", [future, g.const_f32(-1e9), g.const_f32(0.0)], hint="mask")

    new_k, new_v = [], []
    for i in range(layers):
        p = f"decoder/layer_{i}"
        # self-attention with the cache
        y = g.layer_norm(x, w.get(f"{p}/self_attention/layer_norm/gamma", (d,)), w.get(f"{p}/self_attention/layer_norm/beta", (d,)))
        wqkv, bqkv = _split_qkv(w, f"{p}/self_attention", d, scale)
        qkv = g.linear(y, wqkv, bqkv, hint=f"dec{i}_qkv")
        q, k, v = g.op("Split", [qkv, g.const_i64([d, d, d])], outputs=3, axis=-1)
        new_k.append(g.op("Unsqueeze", [k, axis0]))
        new_v.append(g.op("Unsqueeze", [v, axis0]))
        past = []
        for cache in ("in_n_layer_self_k_cache", "in_n_layer_self_v_cache"):
            s = g.op("Slice", [cache, g.op("Concat", [g.const_i64([i]), g.const_i64([0])], axis=0), g.op("Concat", [g.const_i64([i + 1]), "offset"], axis=0), g.const_i64([0, 2])])
            past.append(g.op("Squeeze", [s, axis0]))  # [N, offset, D]
        k_all = g.op("Concat", [past[0], k], axis=1)
        v_all = g.op("Concat", [past[1], v], axis=1)
        a = g.attention(q, k_all, v_all, heads, head_dim, mask=mask)
        a = g.linear(a, w.get(f"{p}/self_attention/linear_1/weight", (d, d)), w.get(f"{p}/self_attention/linear_1/bias", (d,)), hint=f"dec{i}_out")
        x = g.op("Add", [x, a])

        # cross-attention over the encoder's keys and values
        y = g.layer_norm(x, w.get(f"{p}/attention/layer_norm/gamma", (d,)), w.get(f"{p}/attention/layer_norm/beta", (d,)))
        q = g.linear(y, w.get(f"{p}/attention/linear_0/weight", (d, d)) * scale, w.get(f"{p}/attention/linear_0/bias", (d,)) * scale, hint=f"dec{i}_xq")
        idx = g.init("layer", np.asarray(i, dtype=np.int64))
        ck = g.op("Gather", ["n_layer_cross_k", idx], axis=0)  # [N, T2, D]
        cv = g.op("Gather", ["n_layer_cross_v", idx], axis=0)
        a = g.attention(q, ck, cv, heads, head_dim)
        a = g.linear(a, w.get(f"{p}/attention/linear_2/weight", (d, d)), w.get(f"{p}/attention/linear_2/bias", (d,)), hint=f"dec{i}_xout")
        x = g.op("Add", [x, a])

        x = _ffn(g, w, x, f"{p}/ffn", d, f"dec{i}")

    x = g.layer_norm(x, w.get("decoder/layer_norm/gamma", (d,)), w.get("decoder/layer_norm/beta", (d,)))
    if "decoder/projection/weight" in w.v and not np.array_equal(w.v["decoder/projection/weight"], w.v["decoder/embeddings/weight"]):
        raise WhisperConversionError(f"{w.path}: decoder/projection/weight is not tied to the embeddings, which Whisper requires")
    # logits = x @ E^T via Gemm(transB) so the embedding is stored once
    flat = g.op("Reshape", [x, g.const_i64([-1, d])])
    logits = g.op("Gemm", [flat, emb_name], transB=1)
    lead = g.op("Shape", [x], start=0, end=2)
    g.op("Reshape", [logits, g.op("Concat", [lead, g.const_i64([dims.n_vocab])], axis=0)], outputs=["logits"])

    # the new keys and values go to cache slots [offset, offset + n) of every layer in one
    # ScatterND per cache (one copy of the cache, where slicing around the slots and
    # concatenating would be two); indices [L, N, n, 3] = (layer, batch, offset + j)
    n_audio = g.op("Shape", ["tokens"], start=0, end=1)
    grid = g.op("Concat", [g.const_i64([layers]), n_audio, n_tok, g.const_i64([1])], axis=0)
    zeros = g.op("ConstantOfShape", [grid], value=g.helper.make_tensor("zero", TensorProto.INT64, [1], [0]))
    layer_ix = g.op("Add", [zeros, g.init("layer_ix", np.arange(layers, dtype=np.int64).reshape(layers, 1, 1, 1))])
    n_s = g.op("Squeeze", [n_audio, axis0])
    batch_ix = g.op("Add", [zeros, g.op("Reshape", [g.op("Range", [zero, n_s, one]), g.const_i64([1, -1, 1, 1])])])
    pos_ix = g.op("Add", [zeros, g.op("Reshape", [g.op("Range", [off_s, end_s, one]), g.const_i64([1, 1, -1, 1])])])
    indices = g.op("Concat", [layer_ix, batch_ix, pos_ix], axis=3)
    for cache, new, out in (
        ("in_n_layer_self_k_cache", new_k, "out_n_layer_self_k_cache"),
        ("in_n_layer_self_v_cache", new_v, "out_n_layer_self_v_cache"),
    ):
        g.op("ScatterND", [cache, indices, g.op("Concat", new, axis=0)], outputs=[out])

    cache_shape = [layers, "n_audio", dims.n_text_ctx, d]
    cross_shape = [layers, "n_audio", "n_audio_ctx", d]
    inputs = [
        h.make_tensor_value_info("tokens", TensorProto.INT64, ["n_audio", "n_tokens"]),
        h.make_tensor_value_info("in_n_layer_self_k_cache", TensorProto.FLOAT, cache_shape),
        h.make_tensor_value_info("in_n_layer_self_v_cache", TensorProto.FLOAT, cache_shape),
        h.make_tensor_value_info("n_layer_cross_k", TensorProto.FLOAT, cross_shape),
        h.make_tensor_value_info("n_layer_cross_v", TensorProto.FLOAT, cross_shape),
        h.make_tensor_value_info("offset", TensorProto.INT64, [1]),
    ]
    outputs = [
        h.make_tensor_value_info("logits", TensorProto.FLOAT, ["n_audio", "n_tokens", dims.n_vocab]),
        h.make_tensor_value_info("out_n_layer_self_k_cache", TensorProto.FLOAT, cache_shape),
        h.make_tensor_value_info("out_n_layer_self_v_cache", TensorProto.FLOAT, cache_shape),
    ]
    return g.model("whisper_decoder", inputs, outputs)


# --------------------------------------------------------------------------------------
# Metadata and the conversion itself
# --------------------------------------------------------------------------------------


def _special_ids(vocab, dims, config, path):
    index = {tok: i for i, tok in enumerate(vocab)}

    def need(*names):
        for name in names:
            if name in index:
                return index[name]
        raise WhisperConversionError(f"{path}: vocabulary has none of {', '.join(names)}")

    eot = need("<|endoftext|>")
    sot = need("<|startoftranscript|>")
    ids = {
        "sot": sot,
        "eot": eot,
        "translate": need("<|translate|>"),
        "transcribe": need("<|transcribe|>"),
        "no_speech": need("<|nospeech|>", "<|nocaptions|>"),
        "no_timestamps": need("<|notimestamps|>"),
        "sot_prev": need("<|startofprev|>"),
        "sot_lm": need("<|startoflm|>"),
        "blank_id": need("\u0120"),  # "Ġ": the single space
    }
    multilingual = dims.n_vocab >= 51865
    meta = dict(ids)
    meta["is_multilingual"] = int(multilingual)
    specials = {sot, ids["translate"], ids["transcribe"], ids["sot_prev"], ids["sot_lm"], ids["no_speech"]}
    non_speech = [int(t) for t in config.get("suppress_ids", []) if 0 <= int(t) < eot and int(t) not in specials]
    meta["non_speech_tokens"] = ",".join(map(str, non_speech))
    if multilingual:
        lang_ids = [int(t) for t in config.get("lang_ids", [])] or [i for i in range(sot + 1, ids["translate"])]
        codes = []
        for t in lang_ids:
            tok = vocab[t] if 0 <= t < len(vocab) else ""
            if not (tok.startswith("<|") and tok.endswith("|>")):
                raise WhisperConversionError(f"{path}: language id {t} is {tok!r}, not a <|xx|> token")
            codes.append(tok[2:-2])
        en = lang_ids[codes.index("en")] if "en" in codes else lang_ids[0]
        sot_sequence = [sot, en, ids["transcribe"]]
        meta["all_language_tokens"] = ",".join(map(str, lang_ids))
        meta["all_language_codes"] = ",".join(codes)
    else:
        sot_sequence = [sot]
    meta["sot_sequence"] = ",".join(map(str, sot_sequence))
    meta["sot_index"] = 0
    return meta


def _encoder_metadata(dims, specials, prefix):
    meta = {"model_type": f"whisper-{prefix}", "version": "1", "maintainer": "parley (converted from CTranslate2)"}
    meta.update({k: v for k, v in vars(dims).items()})
    meta.update(specials)
    return meta


def _tokens_lines(vocab, eot):
    lines = []
    for i, tok in enumerate(vocab[:eot]):
        lines.append(f"{base64.b64encode(gpt2_token_bytes(tok)).decode('ascii')} {i}\n")
    return "".join(lines)


def _write_atomic(path, write):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def convert_whisper_ct2(src_dir, out_dir, prefix="tiny.en"):
    """Convert the CTranslate2 Whisper model in ``src_dir`` to sherpa-onnx files in ``out_dir``.

    Writes ``{prefix}-encoder.onnx``, ``{prefix}-decoder.onnx`` and ``{prefix}-tokens.txt``
    and returns ``{"encoder": Path, "decoder": Path, "tokens": Path}``. Raises
    :class:`WhisperConversionError` when the input is missing or malformed.
    """
    import onnx

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise WhisperConversionError(f"{src_dir} is not a directory")
    for name in ("model.bin", "config.json"):
        if not (src_dir / name).is_file():
            raise WhisperConversionError(f"{src_dir / name} does not exist")
    try:
        config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WhisperConversionError(f"{src_dir / 'config.json'} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise WhisperConversionError(f"{src_dir / 'config.json'} should hold a JSON object")
    vocab = _read_vocabulary(src_dir)

    model_path = src_dir / "model.bin"
    ct2 = read_ct2_model(model_path)
    if ct2.spec != "WhisperSpec":
        raise WhisperConversionError(f"{model_path}: spec is {ct2.spec!r}, expected 'WhisperSpec'")
    w = _Weights(ct2.variables, model_path)
    dims = _dims(w)
    if len(vocab) != dims.n_vocab:
        raise WhisperConversionError(f"{src_dir}: vocabulary has {len(vocab)} entries, the model's embedding {dims.n_vocab}")
    activation = w.scalar("decoder/activation", default=3)
    if activation != 3:  # CTranslate2's ActivationType::GELU (erf)
        raise WhisperConversionError(f"{model_path}: decoder activation code {activation} is not GELU (3)")
    specials = _special_ids(vocab, dims, config, src_dir)
    tokens_text = _tokens_lines(vocab, specials["eot"])

    encoder = _encoder_graph(w, dims, _encoder_metadata(dims, specials, prefix))
    decoder = _decoder_graph(w, dims)
    del ct2, w
    for model in (encoder, decoder):
        onnx.checker.check_model(model)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "encoder": out_dir / f"{prefix}-encoder.onnx",
        "decoder": out_dir / f"{prefix}-decoder.onnx",
        "tokens": out_dir / f"{prefix}-tokens.txt",
    }
    _write_atomic(paths["tokens"], lambda p: p.write_text(tokens_text, encoding="utf-8"))
    _write_atomic(paths["encoder"], lambda p: onnx.save_model(encoder, str(p)))
    _write_atomic(paths["decoder"], lambda p: onnx.save_model(decoder, str(p)))
    return paths
