#!/usr/bin/env bash
# Everything `make demo` and `make test` need on a fresh Debian machine; each step is skipped
# when its stamp is newer than what it depends on, so the second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test}
STAMPS=.stamps
mkdir -p "$STAMPS"
APT_PACKAGES="portaudio19-dev espeak-ng sox libsndfile1 libc++1 sip-tester baresip-core kamailio"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing_debs=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing_debs" ]; then
    step "apt-get install $missing_debs"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing_debs
fi

if [ ! -x .venv/bin/python ]; then
    step "create .venv"
    "$PYTHON" -m venv .venv
    .venv/bin/pip install -q -U pip
fi

stamp="$STAMPS/install-${EXTRAS//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    step "pip install -e .[$EXTRAS] (builds the Cython core; llama-cpp-python compiles once, then pip caches it)"
    .venv/bin/pip install -e ".[$EXTRAS]"
    # piper-tts pulls the CPU onnxruntime, which shares its files with onnxruntime-gpu: make the
    # GPU build (it runs on the CPU when no GPU is there) the one that is installed.
    if .venv/bin/pip show -q onnxruntime 2>/dev/null; then
        ort_gpu=$(.venv/bin/pip show onnxruntime-gpu | sed -n 's/^Version: //p')
        .venv/bin/pip uninstall -q -y onnxruntime
        .venv/bin/pip install -q --force-reinstall --no-deps "onnxruntime-gpu==$ort_gpu"
    fi
    touch "$stamp"
fi

# An editable install does not rebuild the compiled core when its sources change: do it here.
core_stamp="$STAMPS/core-build"
if [ ! -f "$core_stamp" ] || [ "$stamp" -nt "$core_stamp" ] \
    || [ -n "$(find core \( -name '*.pyx' -o -name '*.pxd' -o -name '_*_py.py' \) -newer "$core_stamp")" ]; then
    step "build the Cython core in place"
    .venv/bin/pip install -q "setuptools>=77"
    .venv/bin/python setup.py -q build_ext --inplace
    touch "$core_stamp"
fi
