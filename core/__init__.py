"""The real-time core: codecs and, per call, the 20 ms audio loop (Cython)."""
