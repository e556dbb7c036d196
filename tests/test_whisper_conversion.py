"""Whisper CTranslate2 -> sherpa-onnx conversion: the reader, the graphs, the tokens, the result.

The graphs are checked against an independent numpy forward pass (openai-whisper's maths,
written out here) on a small synthetic model, so they are tested without any download;
the tests marked ``models`` use the fetched model and recording.
"""

import base64
import json
import math
import re
import struct
import wave

import numpy as np
import onnx
import pytest

from parley.appliance.config import load_settings
from parley.appliance.models import whisper_ct2
from parley.appliance.models.whisper_ct2 import (
    WhisperConversionError,
    convert_whisper_ct2,
    gpt2_token_bytes,
    read_ct2_model,
    read_ct2_variables,
)

BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."

# ---------------------------------------------------------------------------------------
# helpers: a CTranslate2 writer, a synthetic Whisper, a numpy reference forward pass
# ---------------------------------------------------------------------------------------

_CODES = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("float16"): 4}


def _ct2_string(text):
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(variables, aliases=(), spec="WhisperSpec", revision=3, version=6):
    """Serialize name -> array (plus alias pairs) the way CTranslate2 writes model.bin."""
    out = [struct.pack("<I", version), _ct2_string(spec), struct.pack("<II", revision, len(variables))]
    for name, arr in variables.items():
        if isinstance(arr, tuple):  # ("bf16", uint16 array)
            code, arr = 5, arr[1]
        else:
            code = _CODES[arr.dtype]
        arr = np.asarray(arr)
        out.append(_ct2_string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape))
        out.append(struct.pack("<BI", code, arr.nbytes) + arr.tobytes())
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases:
        out.append(_ct2_string(alias) + _ct2_string(target))
    return b"".join(out)


def _byte_encoder():
    return {b: ch for ch, b in whisper_ct2._BYTE_DECODER.items()}


SPECIALS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>", "<|0.00|>",
]


def synthetic_whisper(rng, d=16, heads=2, enc_layers=2, dec_layers=2, n_mels=8, audio_ctx=24, text_ctx=12, ffn=32):
    """A tiny random Whisper in CTranslate2's naming: (variables, aliases, vocabulary)."""
    enc = _byte_encoder()
    vocab = [enc[b] for b in range(256)] + ["\u0120the", "he", "llo"] + SPECIALS
    n_vocab = len(vocab)

    def r(*shape, s=0.3):
        return (rng.standard_normal(shape) * s).astype(np.float16)

    v = {}
    v["encoder/conv1/weight"], v["encoder/conv1/bias"] = r(d, n_mels, 3), r(d)
    v["encoder/conv2/weight"], v["encoder/conv2/bias"] = r(d, d, 3), r(d)
    v["encoder/position_encodings/encodings"] = r(audio_ctx, d)
    v["encoder/num_heads"] = np.array(heads, np.int16)

    def ln(p):
        v[f"{p}/layer_norm/gamma"] = (1 + rng.standard_normal(d) * 0.1).astype(np.float16)
        v[f"{p}/layer_norm/beta"] = r(d, s=0.1)

    def block(p, cross):
        ln(f"{p}/self_attention")
        v[f"{p}/self_attention/linear_0/weight"] = r(3 * d, d)
        bias = r(3 * d)
        bias[d : 2 * d] = 0  # Whisper's key projection has no bias
        v[f"{p}/self_attention/linear_0/bias"] = bias
        v[f"{p}/self_attention/linear_1/weight"], v[f"{p}/self_attention/linear_1/bias"] = r(d, d), r(d)
        if cross:
            ln(f"{p}/attention")
            v[f"{p}/attention/linear_0/weight"], v[f"{p}/attention/linear_0/bias"] = r(d, d), r(d)
            kv_bias = r(2 * d)
            kv_bias[:d] = 0
            v[f"{p}/attention/linear_1/weight"], v[f"{p}/attention/linear_1/bias"] = r(2 * d, d), kv_bias
            v[f"{p}/attention/linear_2/weight"], v[f"{p}/attention/linear_2/bias"] = r(d, d), r(d)
        ln(f"{p}/ffn")
        v[f"{p}/ffn/linear_0/weight"], v[f"{p}/ffn/linear_0/bias"] = r(ffn, d), r(ffn)
        v[f"{p}/ffn/linear_1/weight"], v[f"{p}/ffn/linear_1/bias"] = r(d, ffn), r(d)

    for i in range(enc_layers):
        block(f"encoder/layer_{i}", cross=False)
    ln("encoder")
    v["decoder/activation"] = np.array(3, np.int8)
    v["decoder/num_heads"] = np.array(heads, np.int16)
    v["decoder/embeddings/weight"] = r(n_vocab, d)
    v["decoder/position_encodings/encodings"] = r(text_ctx, d)
    for i in range(dec_layers):
        block(f"decoder/layer_{i}", cross=True)
    ln("decoder")
    return v, [("decoder/projection/weight", "decoder/embeddings/weight")], vocab


def write_ct2_dir(path, variables, aliases, vocab, config=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(ct2_bytes(variables, aliases))
    (path / "vocabulary.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (path / "config.json").write_text(json.dumps(config or {"suppress_ids": [1, 2, 7], "suppress_ids_begin": [220]}))
    return path


def _erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): vectorized, no scipy needed
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _conv1d(x, w, b, stride):
    """x [C, T], w [O, C, 3], padding 1."""
    xp = np.pad(x, ((0, 0), (1, 1)))
    t_out = (x.shape[1] + 2 - 3) // stride + 1
    out = np.zeros((w.shape[0], t_out))
    for k in range(3):
        out += w[:, :, k] @ xp[:, k : k + stride * (t_out - 1) + 1 : stride]
    return out + b[:, None]


class Reference:
    """openai-whisper's forward pass in float64 numpy, straight from the CTranslate2 variables."""

    def __init__(self, variables):
        self.v = {k: np.asarray(a, np.float64) for k, a in variables.items() if np.asarray(a).ndim > 0}
        self.heads_enc = int(variables["encoder/num_heads"])
        self.heads_dec = int(variables["decoder/num_heads"])

    def _mha(self, x, kv, wq, bq, wk, bk, wv, bv, wo, bo, heads, causal):
        q, k, v = x @ wq.T + bq, kv @ wk.T + bk, kv @ wv.T + bv
        n, t, d = q.shape[0], k.shape[0], q.shape[1]
        hd = d // heads
        scale = hd**-0.25
        qh = q.reshape(n, heads, hd).transpose(1, 0, 2) * scale
        kh = k.reshape(t, heads, hd).transpose(1, 2, 0) * scale
        vh = v.reshape(t, heads, hd).transpose(1, 0, 2)
        s = qh @ kh
        if causal:
            s = s + np.triu(np.full((n, t), -np.inf), k=1)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return (p @ vh).transpose(1, 0, 2).reshape(n, d) @ wo.T + bo

    def _self(self, x, p, heads, causal):
        w, b = self.v[f"{p}/linear_0/weight"], self.v[f"{p}/linear_0/bias"]
        d = x.shape[1]
        return self._mha(x, x, w[:d], b[:d], w[d : 2 * d], b[d : 2 * d], w[2 * d :], b[2 * d :],
                         self.v[f"{p}/linear_1/weight"], self.v[f"{p}/linear_1/bias"], heads, causal)

    def _ffn(self, x, p):
        v = self.v
        y = _ln(x, v[f"{p}/layer_norm/gamma"], v[f"{p}/layer_norm/beta"])
        y = _gelu(y @ v[f"{p}/linear_0/weight"].T + v[f"{p}/linear_0/bias"])
        return x + y @ v[f"{p}/linear_1/weight"].T + v[f"{p}/linear_1/bias"]

    def encoder(self, mel):
        """mel [n_mels, T] -> audio features [ceil(T/2), D]."""
        v = self.v
        x = _gelu(_conv1d(mel, v["encoder/conv1/weight"], v["encoder/conv1/bias"], 1))
        x = _gelu(_conv1d(x, v["encoder/conv2/weight"], v["encoder/conv2/bias"], 2)).T
        x = x + v["encoder/position_encodings/encodings"][: x.shape[0]]
        i = 0
        while f"encoder/layer_{i}/ffn/linear_0/weight" in v:
            p = f"encoder/layer_{i}"
            y = _ln(x, v[f"{p}/self_attention/layer_norm/gamma"], v[f"{p}/self_attention/layer_norm/beta"])
            x = x + self._self(y, f"{p}/self_attention", self.heads_enc, causal=False)
            x = self._ffn(x, f"{p}/ffn")
            i += 1
        return _ln(x, v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"])

    def cross_kv(self, audio, layer):
        w = self.v[f"decoder/layer_{layer}/attention/linear_1/weight"]
        b = self.v[f"decoder/layer_{layer}/attention/linear_1/bias"]
        d = audio.shape[1]
        return audio @ w[:d].T + b[:d], audio @ w[d:].T + b[d:]

    def decoder(self, tokens, audio):
        """All tokens at once (no cache) -> logits [n, n_vocab]."""
        v = self.v
        emb = v["decoder/embeddings/weight"]
        x = emb[tokens] + v["decoder/position_encodings/encodings"][: len(tokens)]
        d = x.shape[1]
        i = 0
        while f"decoder/layer_{i}/ffn/linear_0/weight" in v:
            p = f"decoder/layer_{i}"
            y = _ln(x, v[f"{p}/self_attention/layer_norm/gamma"], v[f"{p}/self_attention/layer_norm/beta"])
            x = x + self._self(y, f"{p}/self_attention", self.heads_dec, causal=True)
            y = _ln(x, v[f"{p}/attention/layer_norm/gamma"], v[f"{p}/attention/layer_norm/beta"])
            wkv, bkv = v[f"{p}/attention/linear_1/weight"], v[f"{p}/attention/linear_1/bias"]
            x = x + self._mha(y, audio, v[f"{p}/attention/linear_0/weight"], v[f"{p}/attention/linear_0/bias"],
                              wkv[:d], bkv[:d], wkv[d:], bkv[d:],
                              v[f"{p}/attention/linear_2/weight"], v[f"{p}/attention/linear_2/bias"], self.heads_dec, causal=False)
            x = self._ffn(x, f"{p}/ffn")
            i += 1
        x = _ln(x, v["decoder/layer_norm/gamma"], v["decoder/layer_norm/beta"])
        return x @ emb.T


def _sessions(paths):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    enc = ort.InferenceSession(str(paths["encoder"]), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(paths["decoder"]), opts, providers=["CPUExecutionProvider"])
    return enc, dec


def check_against_reference(paths, variables, tokens, n_frames, rng, atol):
    """Encoder output and two decoder calls (a prompt, then one cached step) vs the reference."""
    enc, dec = _sessions(paths)
    meta = onnx.load(str(paths["encoder"]), load_external_data=False).metadata_props
    meta = {p.key: p.value for p in meta}
    layers, ctx, d = int(meta["n_text_layer"]), int(meta["n_text_ctx"]), int(meta["n_text_state"])
    n_mels = int(meta["n_mels"])
    ref = Reference(variables)

    mel = rng.standard_normal((1, n_mels, n_frames)).astype(np.float32)
    cross_k, cross_v = enc.run(None, {"mel": mel})
    audio = ref.encoder(mel[0].astype(np.float64))
    assert cross_k.shape == (layers, 1, (n_frames + 1) // 2, d)
    for i in range(layers):
        k_ref, v_ref = ref.cross_kv(audio, i)
        np.testing.assert_allclose(cross_k[i, 0], k_ref, atol=atol, rtol=0)
        np.testing.assert_allclose(cross_v[i, 0], v_ref, atol=atol, rtol=0)

    want = ref.decoder(np.asarray(tokens), audio)
    cache = np.zeros((layers, 1, ctx, d), np.float32)
    prompt = np.asarray([tokens[:-1]], np.int64)
    logits, k_cache, v_cache = dec.run(None, {
        "tokens": prompt, "in_n_layer_self_k_cache": cache, "in_n_layer_self_v_cache": cache,
        "n_layer_cross_k": cross_k, "n_layer_cross_v": cross_v, "offset": np.array([0], np.int64),
    })
    assert logits.shape == (1, len(tokens) - 1, want.shape[1])
    assert k_cache.shape == v_cache.shape == cache.shape
    np.testing.assert_allclose(logits[0], want[:-1], atol=atol * 10, rtol=0)
    assert not k_cache[:, :, len(tokens) - 1 :].any(), "slots past the prompt must stay untouched"
    assert k_cache[:, :, : len(tokens) - 1].any()

    logits, k2, v2 = dec.run(None, {
        "tokens": np.asarray([tokens[-1:]], np.int64), "in_n_layer_self_k_cache": k_cache, "in_n_layer_self_v_cache": v_cache,
        "n_layer_cross_k": cross_k, "n_layer_cross_v": cross_v, "offset": np.array([len(tokens) - 1], np.int64),
    })
    assert logits.shape == (1, 1, want.shape[1])
    np.testing.assert_allclose(logits[0, 0], want[-1], atol=atol * 10, rtol=0)
    np.testing.assert_array_equal(k2[:, :, : len(tokens) - 1], k_cache[:, :, : len(tokens) - 1])
    assert k2[:, :, len(tokens) - 1].any() and not k2[:, :, len(tokens) :].any()
    return meta


# ---------------------------------------------------------------------------------------
# the fetched model
# ---------------------------------------------------------------------------------------


def _models_file(*relative):
    path = load_settings().models_dir.joinpath(*relative)
    if not path.exists():
        pytest.skip(f"{path} is not there: run `parley models fetch --for test` (make test does)")
    return path


def _words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_errors(hyp, ref):
    """Word-level Levenshtein distance."""
    h, r = _words(hyp), _words(ref)
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
    return row[-1]


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return rate, pcm.astype(np.float32) / 32768.0


def whisper_recognizer(model_dir, **kwargs):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    return sherpa_onnx.OfflineRecognizer.from_whisper(
        encoder=str(model_dir / "tiny.en-encoder.onnx"),
        decoder=str(model_dir / "tiny.en-decoder.onnx"),
        tokens=str(model_dir / "tiny.en-tokens.txt"),
        num_threads=2,
        **kwargs,
    )


def transcribe(recognizer, rate, samples):
    stream = recognizer.create_stream()
    stream.accept_waveform(rate, samples)
    recognizer.decode_stream(stream)
    return stream.result.text


def test_word_errors_helper():
    assert word_errors(BECKETT, BECKETT) == 0
    assert word_errors("ever tried, ever failed no matter try again fail again fail", BECKETT) == 1
    assert word_errors("", BECKETT) == 12


@pytest.mark.models
def test_converted_model_transcribes_beckett():
    model_dir = _models_file("whisper-tiny.en")
    for name in ("tiny.en-encoder.onnx", "tiny.en-decoder.onnx", "tiny.en-tokens.txt"):
        _models_file("whisper-tiny.en", name)
    wav = _models_file("beckett", "beckett.wav")
    rate, samples = read_wav(wav)
    text = transcribe(whisper_recognizer(model_dir), rate, samples)
    assert len(_words(BECKETT)) == 12
    assert word_errors(text, BECKETT) <= 1, f"transcribed {text!r}"


@pytest.mark.models
def test_fetched_tokens_file_round_trips():
    tokens = _models_file("whisper-tiny.en", "tiny.en-tokens.txt")
    lines = tokens.read_text(encoding="ascii").splitlines()
    assert len(lines) == 50256
    table = {}
    for expect_id, line in enumerate(lines):
        b64, tid = line.split(" ")
        assert int(tid) == expect_id
        table[expect_id] = base64.b64decode(b64, validate=True)
    assert table[0] == b"!"
    assert table[220] == b" "
    assert table[262] == b" the"
    assert table[198] == b"\n"
    # GPT-2's ids for " Ever tried."
    assert b"".join(table[i] for i in (10776, 3088, 13)) == b" Ever tried."
    assert len(set(table.values())) == len(table), "every token's bytes are distinct"


@pytest.mark.models
@pytest.mark.slow
def test_real_model_matches_numpy_reference(tmp_path):
    src = _models_file("whisper-tiny.en", "ct2")
    _models_file("whisper-tiny.en", "ct2", "model.bin")
    paths = convert_whisper_ct2(src, tmp_path)
    variables = read_ct2_variables(src / "model.bin")
    meta = check_against_reference(paths, variables, [50257, 50362, 10776, 3088], n_frames=301, rng=np.random.default_rng(0), atol=5e-4)
    assert meta["model_type"] == "whisper-tiny.en"
    expected = {
        "sot": "50257", "eot": "50256", "sot_sequence": "50257", "transcribe": "50358", "translate": "50357",
        "no_speech": "50361", "no_timestamps": "50362", "blank_id": "220", "n_vocab": "51864", "n_text_layer": "4",
        "n_audio_layer": "4", "n_text_state": "384", "n_text_head": "6", "n_mels": "80", "n_text_ctx": "448",
        "n_audio_ctx": "1500", "is_multilingual": "0", "sot_prev": "50360", "sot_lm": "50359", "sot_index": "0",
    }
    assert {k: meta[k] for k in expected} == expected
    assert paths["tokens"].read_bytes() == _models_file("whisper-tiny.en", "tiny.en-tokens.txt").read_bytes()


# ---------------------------------------------------------------------------------------
# synthetic inputs: no download needed
# ---------------------------------------------------------------------------------------


@pytest.fixture
def synthetic_dir(tmp_path):
    variables, aliases, vocab = synthetic_whisper(np.random.default_rng(1))
    return write_ct2_dir(tmp_path / "ct2", variables, aliases, vocab), variables, vocab


def test_synthetic_model_matches_numpy_reference(synthetic_dir, tmp_path):
    src, variables, vocab = synthetic_dir
    paths = convert_whisper_ct2(src, tmp_path / "out", prefix="synth")
    assert paths == {
        "encoder": tmp_path / "out" / "synth-encoder.onnx",
        "decoder": tmp_path / "out" / "synth-decoder.onnx",
        "tokens": tmp_path / "out" / "synth-tokens.txt",
    }
    sot, nots = vocab.index("<|startoftranscript|>"), vocab.index("<|notimestamps|>")
    for n_frames in (48, 31):  # the full window, and an odd, shorter one (sherpa-onnx trims T)
        meta = check_against_reference(paths, read_ct2_variables(src / "model.bin"), [sot, nots, 256, 7, 3],
                                       n_frames=n_frames, rng=np.random.default_rng(n_frames), atol=1e-4)
    assert meta["model_type"] == "whisper-synth"
    assert meta["sot"] == str(sot) and meta["eot"] == str(vocab.index("<|endoftext|>"))
    assert meta["blank_id"] == "32" and meta["sot_sequence"] == str(sot) and meta["is_multilingual"] == "0"
    assert meta["no_speech"] == str(vocab.index("<|nocaptions|>")) and meta["non_speech_tokens"] == "1,2,7"
    for model in ("encoder", "decoder"):
        loaded = onnx.load(str(paths[model]))
        onnx.checker.check_model(loaded)
        assert loaded.opset_import[0].version == 17
        assert all(t.data_type == onnx.TensorProto.FLOAT for t in loaded.graph.initializer if len(t.dims) == 2)
    assert not list((tmp_path / "out").glob(".*tmp*")), "no temporary files left behind"


def test_synthetic_tokens_file_round_trips(synthetic_dir, tmp_path):
    src, _, vocab = synthetic_dir
    paths = convert_whisper_ct2(src, tmp_path / "out")
    lines = paths["tokens"].read_text(encoding="ascii").splitlines()
    eot = vocab.index("<|endoftext|>")
    assert len(lines) == eot
    decoded = {int(i): base64.b64decode(b) for b, i in (line.split(" ") for line in lines)}
    assert [decoded[b] for b in range(256)] == [bytes([b]) for b in range(256)]
    assert decoded[256] == b" the" and decoded[257] == b"he"


def test_gpt2_byte_map_covers_every_byte():
    enc = _byte_encoder()
    assert len(enc) == 256 and len(set(enc.values())) == 256
    assert gpt2_token_bytes("\u0120the") == b" the"
    assert gpt2_token_bytes("\u010a") == b"\n"
    assert gpt2_token_bytes("".join(enc[b] for b in "é".encode())) == "é".encode()
    with pytest.raises(WhisperConversionError, match="byte map"):
        gpt2_token_bytes("<|\u4e00|>")


def test_reader_resolves_aliases_and_dtypes(tmp_path):
    rng = np.random.default_rng(2)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    bf16_source = np.array([1.5, -2.0, 0.15625], np.float32)
    variables = {
        "a/f32": f32,
        "a/f16": f32.astype(np.float16),
        "a/i8": np.array(3, np.int8),
        "a/i16": np.array([-1, 2], np.int16),
        "a/i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "a/bf16": ("bf16", (bf16_source.view(np.uint32) >> 16).astype(np.uint16)),
    }
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(variables, [("b/alias", "a/f32")], spec="TestSpec", revision=7))
    model = read_ct2_model(path)
    assert (model.spec, model.revision, model.version) == ("TestSpec", 7, 6)
    got = model.variables
    np.testing.assert_array_equal(got["a/f32"], f32)
    np.testing.assert_array_equal(got["b/alias"], f32)
    assert got["a/f16"].dtype == np.float16 and got["a/i8"].shape == () and int(got["a/i8"]) == 3
    np.testing.assert_array_equal(got["a/i32"], variables["a/i32"])
    np.testing.assert_array_equal(got["a/bf16"], bf16_source)
    assert model.aliases == {"b/alias": "a/f32"}


def test_every_truncation_of_model_bin_is_a_typed_error(tmp_path):
    variables = {"x/w": np.ones((2, 3), np.float16), "x/n": np.array(6, np.int16)}
    data = ct2_bytes(variables, [("y", "x/w")])
    path = tmp_path / "model.bin"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(WhisperConversionError, match="model.bin"):
            read_ct2_model(path)
    path.write_bytes(data + b"\0")
    with pytest.raises(WhisperConversionError, match="unexpected bytes"):
        read_ct2_model(path)


def test_truncated_model_bin_fails_conversion_and_writes_nothing(synthetic_dir, tmp_path):
    src, _, _ = synthetic_dir
    data = (src / "model.bin").read_bytes()
    (src / "model.bin").write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    with pytest.raises(WhisperConversionError, match="truncated"):
        convert_whisper_ct2(src, out)
    assert not out.exists() or not any(out.iterdir())


def test_wrong_spec_and_missing_inputs_are_typed_errors(synthetic_dir, tmp_path):
    src, variables, vocab = synthetic_dir
    (src / "model.bin").write_bytes(ct2_bytes(variables, spec="TransformerSpec"))
    with pytest.raises(WhisperConversionError, match="TransformerSpec"):
        convert_whisper_ct2(src, tmp_path / "o1")

    (src / "model.bin").write_bytes(ct2_bytes(variables, version=5))
    with pytest.raises(WhisperConversionError, match="version 5"):
        convert_whisper_ct2(src, tmp_path / "o2")

    partial = {k: a for k, a in variables.items() if "decoder/layer_1/ffn" not in k}
    (src / "model.bin").write_bytes(ct2_bytes(partial))
    with pytest.raises(WhisperConversionError, match="decoder/layer_1/ffn"):
        convert_whisper_ct2(src, tmp_path / "o3")

    (src / "model.bin").write_bytes(ct2_bytes(variables))
    (src / "vocabulary.txt").write_text("\n".join(vocab[:-3]) + "\n")
    with pytest.raises(WhisperConversionError, match="vocabulary has"):
        convert_whisper_ct2(src, tmp_path / "o4")

    (src / "vocabulary.txt").unlink()
    with pytest.raises(WhisperConversionError, match="vocabulary.txt does not exist"):
        convert_whisper_ct2(src, tmp_path / "o5")
    with pytest.raises(WhisperConversionError, match="model.bin does not exist"):
        read_ct2_model(tmp_path / "nowhere" / "model.bin")
    with pytest.raises(WhisperConversionError, match="not a directory"):
        convert_whisper_ct2(tmp_path / "nowhere", tmp_path / "o6")
    assert issubclass(WhisperConversionError, ValueError)


def test_a_crash_while_writing_leaves_no_complete_looking_file(synthetic_dir, tmp_path, monkeypatch):
    src, _, _ = synthetic_dir
    out = tmp_path / "out"
    real_save = onnx.save_model

    def save_then_crash(model, path, *args, **kwargs):
        if "decoder" in str(path):
            with open(path, "wb") as fh:
                fh.write(b"half a model")
            raise OSError("disk full")
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(onnx, "save_model", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        convert_whisper_ct2(src, out)
    names = sorted(p.name for p in out.iterdir())
    assert "tiny.en-decoder.onnx" not in names
    assert not [n for n in names if "tmp" in n]
