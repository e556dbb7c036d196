"""Real SIP programs on loopback for tests: baresip as a phone, Kamailio as the PBX (no tests here).

Parley's user agent is checked against independent implementations instead of against itself.
All traffic stays on 127.0.0.1: SIP and control sockets bind there, and baresip sends RTP only to
the 127.0.0.1 addresses in the SDP (baresip 1.0 binds its RTP sockets to 0.0.0.0 all the same).
Each program runs in its own process group, and leaving its ``with`` block kills the group; so
does a watchdog if the test process dies first. Config, log and recordings go to ``directory``
(pass a pytest ``tmp_path`` to keep them after a failure), else to a temporary directory.

    with (
        Kamailio({"parley": "secret", "alice": "pw"}) as pbx,
        Baresip("alice", registrar=pbx.address, password="pw", microphone=question_wav) as alice,
    ):
        pbx.wait_registered("parley")
        alice.dial(pbx.uri("parley"))
        alice.wait_for("CALL_ESTABLISHED")
        alice.send_dtmf("42#")
        alice.wait_heard(5.0)
        alice.hangup()
        alice.wait_for("CALL_CLOSED")
        rate, heard = read_wav(alice.recording())
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOOPBACK = "127.0.0.1"
G711_RATE = 8000
DTMF_DIGITS = "0123456789*#ABCD"

BARESIP_MODULES = ("g711", "aufile", "sndfile", "account", "menu", "ctrl_tcp")
KAMAILIO_MODULES = (
    "tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog", "sanity",
    "usrloc", "registrar", "auth", "htable", "ctl",
)  # fmt: skip
KAMAILIO_MODULE_DIRS = (Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"), Path("/usr/lib/kamailio/modules"))
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")


class SipProgramError(RuntimeError):
    """baresip or Kamailio failed to start, died, or refused a command; the message ends with its log."""


class _PortTaken(SipProgramError):
    """A port that was free when probed was taken before the program bound it; start again."""


START_ATTEMPTS = 3


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing holds right now (the OS may hand it out again later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def free_baresip_sip_port() -> int:
    """A port P for ``sip_listen``: baresip 1.0 binds UDP P, TCP P and TCP P+1 (TLS), all free now."""
    while True:
        port = free_udp_port()
        try:
            for kind, number in ((socket.SOCK_STREAM, port), (socket.SOCK_STREAM, port + 1)):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind((LOOPBACK, number))
            return port
        except OSError:
            continue


def baresip_module_dir() -> Path | None:
    """Where the installed baresip keeps its modules (Debian: /usr/lib/baresip/modules)."""
    program = shutil.which("baresip")
    if program is None:
        return None
    return Path(program).resolve().parent.parent / "lib" / "baresip" / "modules"


def baresip_available() -> bool:
    """baresip is installed with every module the harness loads (Debian: baresip-core)."""
    modules = baresip_module_dir()
    return modules is not None and all((modules / f"{name}.so").exists() for name in BARESIP_MODULES)


def kamailio_available() -> bool:
    """kamailio and kamcmd are installed with every module the harness loads (Debian: kamailio)."""
    if shutil.which("kamailio") is None or shutil.which("kamcmd") is None:
        return False
    return any(all((d / f"{name}.so").exists() for name in KAMAILIO_MODULES) for d in KAMAILIO_MODULE_DIRS)


def read_wav(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """Sample rate and mono int16 samples of a 16-bit PCM WAV.

    Tolerates a header that was never finalised (a recording still open, or a phone that was
    killed): the data then runs to the end of the file.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a WAV file")
    rate = channels = bits = None
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        body = offset + 8
        if chunk == b"fmt ":
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            rate = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
        elif chunk == b"data":
            if rate is None or bits != 16:
                raise ValueError(f"{path} is not 16-bit PCM")
            end = len(data) if size == 0 or body + size > len(data) else body + size
            end -= (end - body) % (2 * channels)
            samples = np.frombuffer(data[body:end], dtype="<i2").reshape(-1, channels)[:, 0]
            return rate, samples.astype(np.int16)
        offset = body + size + (size & 1)
    raise ValueError(f"{path} has no data chunk")


def write_wav(path: str | os.PathLike, samples: np.ndarray, rate: int = G711_RATE) -> Path:
    """Write mono int16 samples as a WAV file."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def tone_share(samples: np.ndarray, rate: int, hz: float, *, width_hz: float = 50.0) -> float:
    """Fraction of the signal's energy within ``width_hz`` of ``hz`` (1.0: a pure tone, ~0: absent)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        return 0.0
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    total = power[1:].sum()
    return float(power[np.abs(freqs - hz) <= width_hz].sum() / total) if total > 0 else 0.0


def rms_dbfs(samples: np.ndarray) -> float:
    """Level of int16 samples in dB relative to full scale (-inf for digital silence)."""
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


# -- supervised processes ---------------------------------------------------------------------

_LIVE: set[_Supervised] = set()


# Kills a process group when the pipe from the test process closes without "disarm": the test
# process died (SIGKILL, a timeout's SIGTERM) before it could stop the program itself.
_WATCHDOG = 'read line; [ "$line" = disarm ] || kill -KILL "-$1"'


class _Supervised:
    """A child in its own process group with stdout and stderr in a log file; stop() kills the group.

    A watchdog shell kills the group too should this process die first: Kamailio's workers
    outlive their main process otherwise.
    """

    def __init__(self, argv: list[str], log_path: Path, cwd: Path):
        self.argv = argv
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.watchdog = subprocess.Popen(
            ["sh", "-c", _WATCHDOG, "watchdog", str(self.process.pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the program (it unregisters, ends calls, reaps its children), then SIGKILL its group."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        try:
            self.watchdog.communicate(b"disarm\n", timeout=5)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.watchdog.kill()
            self.watchdog.wait()
        _LIVE.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_leftovers() -> None:
    for child in list(_LIVE):
        child.stop(grace_s=1.0)


class _ProgramDirectory:
    """The directory a program runs in: the caller's (kept), or a temporary one (removed at close)."""

    def __init__(self, given: str | os.PathLike | None, prefix: str):
        self.temporary = given is None
        self.path = Path(tempfile.mkdtemp(prefix=prefix)) if given is None else Path(given)
        self.path.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


# -- baresip ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhoneEvent:
    """One event that baresip reported on its control connection."""

    type: str
    """What happened: CALL_INCOMING, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, CALL_DTMF_START,
    CALL_DTMF_END, REGISTER_OK, REGISTER_FAIL, AUDIO_ERROR, ..."""
    param: str
    """The event's detail: the digit for CALL_DTMF_START, the reason for CALL_CLOSED, the status
    line for REGISTER_OK/REGISTER_FAIL, the peer's URI for call progress events."""
    call_id: str | None
    """The SIP Call-ID, for call events."""
    peer_uri: str | None
    """The far end as this phone sees it (From of an incoming call, To of an outgoing one)."""
    direction: str | None
    """"incoming" or "outgoing", for call events."""
    account: str | None
    """The address of record of the account the event belongs to."""


class Baresip:
    """A baresip phone with no sound card: a WAV file is its microphone and what it hears is recorded.

    ``user`` (default ``name``) is its SIP user. Without ``registrar`` it takes calls directly at
    ``uri``; with ``registrar="127.0.0.1:PORT"`` and ``password`` it registers there with digest
    auth before the ``with`` block starts (its address of record is then ``aor``). ``microphone``
    (any WAV; converted with sox unless it is already 8 kHz mono 16-bit) is sent from the moment
    each call is answered, followed by ``microphone_tail_s`` of silence: baresip 1.0 hangs up when
    its audio file ends. ``answer`` is baresip's answer mode: "auto", "manual" or "early".
    """

    def __init__(
        self,
        name: str = "phone",
        *,
        user: str | None = None,
        microphone: str | os.PathLike | None = None,
        registrar: str | None = None,
        password: str | None = None,
        answer: str = "auto",
        codecs: tuple[str, ...] = ("PCMU", "PCMA"),
        microphone_tail_s: float = 120.0,
        register_interval_s: int = 600,
        start_timeout_s: float = 10.0,
        directory: str | os.PathLike | None = None,
    ):
        self.name = name
        self.user = user or name
        if not SAFE_NAME.match(self.name) or not SAFE_NAME.match(self.user):
            raise ValueError(f"phone name and user must be letters, digits, '.', '_' or '-': {name!r}, {user!r}")
        if answer not in ("auto", "manual", "early"):
            raise ValueError(f"answer must be 'auto', 'manual' or 'early', not {answer!r}")
        unknown = [c for c in codecs if c.upper() not in ("PCMU", "PCMA")]
        if unknown or not codecs:
            raise ValueError(f"codecs must be taken from PCMU and PCMA (the g711 module), not {codecs!r}")
        if registrar is not None and password is None:
            raise ValueError(f"registering {self.user} at {registrar} needs a password")
        if password is not None and any(c in password for c in ';>"\n\r '):
            raise ValueError("the password must not contain ';', '>', '\"', spaces or line breaks")
        self.microphone_source = Path(microphone) if microphone is not None else None
        if self.microphone_source is not None and not self.microphone_source.exists():
            raise FileNotFoundError(f"microphone WAV {self.microphone_source} does not exist")
        self.registrar = registrar
        self.password = password
        self.answer_mode = answer
        self.codecs = tuple(c.upper() for c in codecs)
        self.microphone_tail_s = microphone_tail_s
        self.register_interval_s = register_interval_s
        self.start_timeout_s = start_timeout_s
        self._given_directory = directory

        self.sip_port = 0
        """Its SIP port on 127.0.0.1 (UDP, and TCP), chosen when it starts."""
        self.ctrl_port = 0
        """Its ctrl_tcp port on 127.0.0.1, chosen when it starts."""

        self._directory: _ProgramDirectory | None = None
        self._program: _Supervised | None = None
        self._socket: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Condition()
        self._events: list[PhoneEvent] = []
        self._consumed: set[int] = set()
        self._responses: dict[str, dict] = {}
        self._tokens = itertools.count(1)
        self._closed = False

    # -- lifecycle

    @property
    def uri(self) -> str:
        """Where this phone takes calls directly, no registrar involved (once started)."""
        if not self.sip_port:
            raise RuntimeError(f"baresip {self.name} is not started: use it in a `with` block")
        return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"

    @property
    def aor(self) -> str:
        """Its address of record: at the registrar when it has one, else ``uri``."""
        return f"sip:{self.user}@{self.registrar}" if self.registrar else self.uri

    @property
    def directory(self) -> Path:
        """Its config directory (config, accounts, contacts, log, recordings/)."""
        if self._directory is None:
            raise RuntimeError(f"baresip {self.name} is not started: use it in a `with` block")
        return self._directory.path

    @property
    def log_path(self) -> Path:
        return self.directory / "baresip.log"

    @property
    def pid(self) -> int | None:
        return self._program.pid if self._program else None

    def __enter__(self) -> Baresip:
        self._directory = _ProgramDirectory(self._given_directory, f"baresip-{self.name}-")
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop()

    def _start(self) -> None:
        (self.directory / "recordings").mkdir(exist_ok=True)
        self._microphone = self._prepare_microphone(self.directory / "microphone.wav")
        (self.directory / "contacts").write_text("")
        for attempt in range(1, START_ATTEMPTS + 1):
            self.sip_port, self.ctrl_port = free_baresip_sip_port(), free_tcp_port()
            (self.directory / "config").write_text(self._config())
            account = self._account_line()
            # A registering account is added over the control connection instead, so that its
            # REGISTER_OK is not sent before the harness is listening for it.
            (self.directory / "accounts").write_text(
                f"{account}\n" if self.registrar is None else f"# {account} is added with `uanew`\n"
            )
            self._program = _Supervised(["baresip", "-f", str(self.directory)], self.log_path, self.directory)
            try:
                self._connect()
                break
            except _PortTaken:
                self._disconnect()
                self._program.stop()
                if attempt == START_ATTEMPTS:
                    raise
        if self.registrar is not None:
            self._command("uanew", account)
            outcome = self._wait_any(("REGISTER_OK", "REGISTER_FAIL"), self.start_timeout_s)
            if outcome.type == "REGISTER_FAIL":
                raise SipProgramError(self._explain(f"registering {self.aor} failed: {outcome.param}"))

    def _stop(self) -> None:
        self._disconnect()
        if self._program is not None:
            self._program.stop()
        if self._directory is not None:
            self._directory.close()

    def _disconnect(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._socket.close()
        if self._reader is not None:
            self._reader.join(2.0)
        self._socket = self._reader = None
        with self._lock:
            self._closed = True

    def _prepare_microphone(self, out: Path) -> Path:
        tail = np.zeros(int(max(self.microphone_tail_s, 0.0) * G711_RATE), dtype=np.int16)
        if self.microphone_source is None:
            return write_wav(out, tail if len(tail) else np.zeros(G711_RATE, dtype=np.int16))
        source = self.microphone_source
        with wave.open(str(source), "rb") as probe:
            ready = (probe.getframerate(), probe.getnchannels(), probe.getsampwidth()) == (G711_RATE, 1, 2)
        if not ready:
            if shutil.which("sox") is None:
                raise SipProgramError(f"{source} is not 8 kHz mono 16-bit and sox is not installed to convert it")
            converted = out.with_name("microphone-8k.wav")
            subprocess.run(
                ["sox", str(source), "-r", str(G711_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(converted)],
                check=True,
                capture_output=True,
                timeout=30,
            )
            source = converted
        _, speech = read_wav(source)
        return write_wav(out, np.concatenate([speech, tail]))

    def _config(self) -> str:
        return f"""\
# baresip 1.0 config written by tests/sip_phone.py for phone {self.name}
poll_method\t\tepoll
sip_listen\t\t{LOOPBACK}:{self.sip_port}
net_interface\t\t{LOOPBACK}
call_local_timeout\t30
call_max_calls\t\t4
# No sound card: the microphone is a WAV file (aufile), and what is heard is written by the
# sndfile filter; the player names no module, so the decoded audio goes nowhere else.
audio_source\t\taufile,{self._microphone}
audio_player\t\tnone,none
audio_alert\t\tnone,none
jitter_buffer_delay\t5-10
rtp_stats\t\tno
module_path\t\t{baresip_module_dir()}
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\tsndfile.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t{LOOPBACK}:{self.ctrl_port}
snd_path\t\t{self.directory / "recordings"}
statmode_default\toff
"""

    def _account_line(self) -> str:
        codecs = ",".join(f"{c.lower()}/{G711_RATE}/1" for c in self.codecs)
        params = f";answermode={self.answer_mode};audio_codecs={codecs}"
        if self.registrar is None:
            return f"<{self.uri}>{params};regint=0"
        return f"<{self.aor}>{params};auth_pass={self.password};regint={self.register_interval_s}"

    def _connect(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            self._check_alive("starting")
            try:
                self._socket = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SipProgramError(self._explain(f"ctrl_tcp did not open {LOOPBACK}:{self.ctrl_port}")) from None
                time.sleep(0.05)
        self._socket.settimeout(None)
        with self._lock:
            self._closed = False
            self._events.clear()
            self._consumed.clear()
            self._responses.clear()
        self._reader = threading.Thread(target=self._read, name=f"baresip-{self.name}-ctrl", daemon=True)
        self._reader.start()
        # An answer proves the port is this baresip's: when another program held it, ctrl_tcp
        # failed to listen (baresip runs on without it) and the connection went to that program.
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                self._command("reginfo", timeout=1.0)
                return
            except SipProgramError:
                if "ctrl_tcp: failed to listen" in self._program.log_tail(100):
                    raise _PortTaken(self._explain(f"ctrl_tcp port {self.ctrl_port} was taken")) from None
                if time.monotonic() > deadline:
                    raise

    def _check_alive(self, doing: str) -> None:
        if self._program.alive():
            return
        error = _PortTaken if "Address already in use" in self._program.log_tail() else SipProgramError
        raise error(self._explain(f"exited with status {self._program.process.returncode} while {doing}"))

    # -- control connection (ctrl_tcp: JSON in netstrings, "len:json,")

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._socket.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while True:
                length, colon, rest = buffer.partition(b":")
                if not colon or len(rest) < int(length) + 1:
                    break
                self._dispatch(json.loads(rest[: int(length)]))
                buffer = rest[int(length) + 1 :]
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _dispatch(self, message: dict) -> None:
        with self._lock:
            if message.get("event"):
                self._events.append(
                    PhoneEvent(
                        type=message.get("type", ""),
                        param=message.get("param", ""),
                        call_id=message.get("id"),
                        peer_uri=message.get("peeruri"),
                        direction=message.get("direction"),
                        account=message.get("accountaor"),
                    )
                )
            elif message.get("response"):
                self._responses[str(message.get("token"))] = message
            self._lock.notify_all()

    def _command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run one of baresip's long commands (the menu's) and return its text output."""
        token = str(next(self._tokens))
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        if self._socket is None:
            raise RuntimeError(f"baresip {self.name} is not started: use it in a `with` block")
        self._socket.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + timeout
        with self._lock:
            while token not in self._responses:
                remaining = deadline - time.monotonic()
                self._check_alive(f"running `{command} {params}`")
                if self._closed or remaining <= 0:
                    raise SipProgramError(self._explain(f"no answer to `{command} {params}` within {timeout}s"))
                self._lock.wait(min(remaining, 0.2))
            response = self._responses.pop(token)
        if not response.get("ok"):
            raise SipProgramError(self._explain(f"`{command} {params}` failed: {response.get('data')}"))
        return response.get("data", "")

    # -- events

    @property
    def events(self) -> list[PhoneEvent]:
        """Every event so far, oldest first."""
        with self._lock:
            return list(self._events)

    def wait_for(self, event: str, timeout: float = 10.0, **fields: str) -> PhoneEvent:
        """The oldest event of this type (and these field values, e.g. ``param="5"``) not yet
        returned by ``wait_for``; waits up to ``timeout`` seconds for one to arrive."""
        return self._wait_any((event,), timeout, **fields)

    def _wait_any(self, types: tuple[str, ...], timeout: float, **fields: str) -> PhoneEvent:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for index, candidate in enumerate(self._events):
                    if index in self._consumed or candidate.type not in types:
                        continue
                    if all(getattr(candidate, key) == value for key, value in fields.items()):
                        self._consumed.add(index)
                        return candidate
                remaining = deadline - time.monotonic()
                gone = self._closed or not self._program.alive()
                if gone or remaining <= 0:
                    seen = ", ".join(f"{e.type}({e.param})" for e in self._events if e.type != "CALL_RTCP")
                    wanted = " or ".join(types) + "".join(f" {k}={v!r}" for k, v in fields.items())
                    if gone:
                        raise SipProgramError(self._explain(f"gone while waiting for {wanted}; events: {seen or 'none'}"))
                    raise TimeoutError(self._explain(f"no {wanted} within {timeout}s; events: {seen or 'none'}"))
                self._lock.wait(min(remaining, 0.2))

    # -- calls

    def dial(self, uri: str) -> None:
        """Start a call to ``uri``; follow it with ``wait_for("CALL_ESTABLISHED")``."""
        self._command("dial", uri)

    def answer(self) -> None:
        """Answer the ringing call (for ``answer="manual"``)."""
        self._command("accept")

    def hangup(self) -> None:
        """End the current call (BYE, or CANCEL while it rings)."""
        self._command("hangup")

    def send_dtmf(self, digits: str, gap_s: float = 0.2) -> None:
        """Press keys in the current call: RFC 4733 telephone-events, one key every ``gap_s``."""
        bad = [d for d in digits if d.upper() not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"not DTMF keys: {''.join(bad)!r} (use {DTMF_DIGITS})")
        for index, digit in enumerate(digits.upper()):
            if index:
                time.sleep(gap_s)
            # `sndcode` sends the key, then its release, as telephone-event packets.
            self._command("sndcode", digit)

    def switch_microphone(self, wav: str | os.PathLike) -> None:
        """Make ``wav`` (8 kHz mono 16-bit, long enough: baresip hangs up when it ends) the
        microphone from now on, mid-call (baresip's ``ausrc`` command)."""
        self._command("ausrc", f"aufile,{Path(wav)}")

    def recording(self, timeout: float = 5.0) -> Path:
        """The WAV of what this phone heard in its latest call (8 kHz mono, decoded G.711).

        Complete once CALL_CLOSED has been seen; read with ``read_wav``, which copes with the
        unfinished header of a call still in progress. baresip's sndfile names recordings by the
        second a call's audio started, so two calls begun within one second share a file.
        """
        return self._latest_recording("dec", timeout)

    def wait_heard(self, seconds: float, timeout: float = 10.0) -> None:
        """Wait until the latest call's recording holds ``seconds`` of audio from the far end."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                rate, heard = read_wav(self._latest_recording("dec", timeout=0))
                if len(heard) >= seconds * rate:
                    return
            except (FileNotFoundError, ValueError):
                pass  # not created yet, or its header is still being written
            if time.monotonic() > deadline:
                raise TimeoutError(self._explain(f"did not hear {seconds}s of audio within {timeout}s"))
            time.sleep(0.05)

    def log_text(self) -> str:
        """baresip's console output so far (negotiated codecs, DTMF, SIP errors)."""
        return self.log_path.read_text(errors="replace")

    def sent_recording(self, timeout: float = 5.0) -> Path:
        """The WAV of what this phone sent in its latest call, as it went into the encoder."""
        return self._latest_recording("enc", timeout)

    def _latest_recording(self, kind: str, timeout: float) -> Path:
        deadline = time.monotonic() + timeout
        while True:
            found = sorted((self.directory / "recordings").glob(f"dump-*-{kind}.wav"))
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise FileNotFoundError(self._explain(f"no {kind} recording in {self.directory / 'recordings'}"))
            time.sleep(0.05)

    def _explain(self, what: str) -> str:
        log = self._program.log_tail() if self._program else "(not started)"
        return f"baresip {self.name}: {what}\n--- {self.log_path} (tail) ---\n{log}"


# -- Kamailio ---------------------------------------------------------------------------------


class Kamailio:
    """Kamailio 5.6 as the PBX: a registrar with digest auth that proxies calls to registered contacts.

    ``users`` maps user names to plain-text passwords (held in an htable, no database). Bindings
    live in memory (usrloc db_mode 0). A REGISTER is answered 401 until its credentials match;
    with ``challenge_calls`` a request from one of ``users`` is answered 407 until it does too.
    Requests from anyone else are proxied unauthenticated. A request for a user here goes to the
    user's registered contacts (404 when there are none); one for another address is proxied there.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        realm: str = "parley.test",
        challenge_calls: bool = True,
        children: int = 2,
        start_timeout_s: float = 10.0,
        directory: str | os.PathLike | None = None,
    ):
        for user, password in users.items():
            if not SAFE_NAME.match(user):
                raise ValueError(f"user names must be letters, digits, '.', '_' or '-': {user!r}")
            if any(c in password for c in '"\\\n\r;>'):
                raise ValueError(f"the password of {user} must not contain quotes, backslashes, ';', '>' or line breaks")
        if not SAFE_NAME.match(realm):
            raise ValueError(f"realm must be letters, digits, '.', '_' or '-': {realm!r}")
        self.users = dict(users)
        self.realm = realm
        self.challenge_calls = challenge_calls
        self.children = children
        self.start_timeout_s = start_timeout_s
        self._given_directory = directory
        self.port = 0
        """Its one SIP port on 127.0.0.1 (UDP), chosen when it starts."""
        self._directory: _ProgramDirectory | None = None
        self._runtime: _ProgramDirectory | None = None
        self._program: _Supervised | None = None

    @property
    def address(self) -> str:
        """host:port to use as registrar or outbound proxy (once started)."""
        if not self.port:
            raise RuntimeError("Kamailio is not started: use it in a `with` block")
        return f"{LOOPBACK}:{self.port}"

    def uri(self, user: str) -> str:
        """The address of record of ``user`` here, e.g. sip:parley@127.0.0.1:PORT."""
        return f"sip:{user}@{self.address}"

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise RuntimeError("Kamailio is not started: use it in a `with` block")
        return self._directory.path

    @property
    def log_path(self) -> Path:
        return self.directory / "kamailio.log"

    @property
    def pid(self) -> int | None:
        return self._program.pid if self._program else None

    def log_text(self) -> str:
        """Its log so far; the script logs one ``event=...`` line per registration and routed request."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Kamailio:
        self._directory = _ProgramDirectory(self._given_directory, "kamailio-")
        # Runtime files (pid, control socket) get a short path of their own: a unix socket's path
        # must fit in 108 bytes, which a pytest tmp_path may not.
        self._runtime = _ProgramDirectory(None, "kam-")
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop()

    def _start(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_udp_port()
            try:
                self._start_on_port()
                return
            except _PortTaken:
                self._program.stop()
                if attempt == START_ATTEMPTS:
                    raise

    def _start_on_port(self) -> None:
        config = self.directory / "kamailio.cfg"
        config.write_text(self._config())
        argv = [
            "kamailio", "-f", str(config),
            "-DD",  # stay in the foreground, with the worker children in its process group
            "-E",  # log to stderr, which goes to kamailio.log
            "-Y", str(self._runtime.path),
            "-P", str(self._runtime.path / "kamailio.pid"),
            "-w", str(self.directory),
            "-m", "32", "-M", "4",
        ]  # fmt: skip
        self._program = _Supervised(argv, self.log_path, self.directory)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if not self._program.alive():
                error = _PortTaken if "Address already in use" in self._program.log_tail() else SipProgramError
                raise error(self._explain(f"kamailio exited with status {self._program.process.returncode}"))
            if self._ctl_socket.exists():
                reply = self._kamcmd("core.uptime", check=False)
                if reply is not None and "error" not in reply:
                    return
            if time.monotonic() > deadline:
                raise SipProgramError(self._explain(f"not answering on {self._ctl_socket} after {self.start_timeout_s}s"))
            time.sleep(0.05)

    def _stop(self) -> None:
        if self._program is not None:
            self._program.stop()
        for directory in (self._runtime, self._directory):
            if directory is not None:
                directory.close()

    @property
    def _ctl_socket(self) -> Path:
        return self._runtime.path / "kamailio_ctl"

    def _kamcmd(self, *args: str, check: bool = True) -> str | None:
        """One RPC over the ctl module's socket; kamcmd prints errors but exits 0, so callers read the text."""
        try:
            done = subprocess.run(
                ["kamcmd", "-s", f"unix:{self._ctl_socket}", *args], capture_output=True, text=True, timeout=5
            )
        except subprocess.TimeoutExpired:
            if check:
                raise SipProgramError(self._explain(f"kamcmd {' '.join(args)} timed out")) from None
            return None
        if done.returncode != 0:
            if check:
                raise SipProgramError(self._explain(f"kamcmd {' '.join(args)}: {done.stderr or done.stdout}"))
            return None
        return done.stdout + done.stderr

    def contacts(self, user: str) -> list[str]:
        """The contact URIs registered for ``user`` right now (from usrloc, over kamcmd)."""
        reply = self._kamcmd("ul.lookup", "location", user)
        if "not found" in reply.lower():
            return []
        return re.findall(r"^\s*Address:\s*(\S+)", reply, flags=re.MULTILINE)

    def registered(self, user: str) -> bool:
        """Whether ``user`` has at least one live binding."""
        return bool(self.contacts(user))

    def wait_registered(self, user: str, timeout: float = 10.0) -> list[str]:
        """Wait until ``user`` has a binding; returns its contacts."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.contacts(user)
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(self._explain(f"{user} did not register within {timeout}s"))
            time.sleep(0.1)

    def _config(self) -> str:
        passwords = "\n".join(f'\t$sht(users=>{user}) = "{password}";' for user, password in self.users.items())
        call_auth = (
            f"""\
	if ($sht(users=>$fU) != $null) {{
		if (!pv_proxy_authenticate("{self.realm}", "$sht(users=>$au)", "0")) {{
			xlog("L_NOTICE", "event=challenge method=$rm user=$fU\\n");
			proxy_challenge("{self.realm}", "0");
			exit;
		}}
		if ($au != $fU) {{
			sl_send_reply("403", "Forbidden auth ID");
			exit;
		}}
		consume_credentials();
	}}
"""
            if self.challenge_calls
            else ""
        )
        return f"""\
#!KAMAILIO
# Written by tests/sip_phone.py: registrar + proxy on loopback, plain-text users, no database.
debug=2
log_stderror=yes
fork=yes
children={self.children}
disable_tcp=yes
disable_sctp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
listen=udp:{self.address}
alias="{self.address}"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "ctl.so"

modparam("usrloc", "db_mode", 0)
modparam("htable", "htable", "users=>size=4;")
modparam("ctl", "binrpc", "unix:{self._ctl_socket}")

event_route[htable:mod-init] {{
{passwords}
}}

request_route {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	if (!sanity_check()) {{
		exit;
	}}
	if (has_totag()) {{
		if (loose_route()) {{
			route(RELAY);
		}}
		if (is_method("ACK")) {{
			if (t_check_trans()) {{
				route(RELAY);
			}}
			exit;
		}}
		sl_send_reply("404", "Not here");
		exit;
	}}
	if (is_method("CANCEL")) {{
		if (t_check_trans()) {{
			route(RELAY);
		}}
		exit;
	}}
	t_check_trans();
	if (is_method("REGISTER")) {{
		if (!pv_www_authenticate("{self.realm}", "$sht(users=>$au)", "0")) {{
			xlog("L_NOTICE", "event=challenge method=REGISTER user=$tU\\n");
			www_challenge("{self.realm}", "0");
			exit;
		}}
		if ($au != $tU) {{
			sl_send_reply("403", "Forbidden auth ID");
			exit;
		}}
		consume_credentials();
		if (!save("location")) {{
			sl_reply_error();
		}}
		xlog("L_NOTICE", "event=registered user=$tU contact=$ct\\n");
		exit;
	}}
{call_auth}\
	if (is_method("INVITE")) {{
		record_route();
	}}
	if (uri == myself) {{
		if (!lookup("location")) {{
			xlog("L_NOTICE", "event=not_found method=$rm from=$fU ruri=$ru\\n");
			sl_send_reply("404", "Not Found");
			exit;
		}}
	}}
	xlog("L_NOTICE", "event=route method=$rm from=$fU ruri=$ru call_id=$ci\\n");
	route(RELAY);
}}

route[RELAY] {{
	if (!t_relay()) {{
		sl_reply_error();
	}}
	exit;
}}
"""

    def _explain(self, what: str) -> str:
        log = self._program.log_tail() if self._program else "(not started)"
        path = self.log_path if self._directory else "kamailio.log"
        return f"kamailio: {what}\n--- {path} (tail) ---\n{log}"
