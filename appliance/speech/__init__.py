"""Speech for the voice loop: STT (``Recognizer``) and sentence-streaming TTS (``Synthesizer``)
over sherpa-onnx, the bus workers that serve them (``SttWorker``, ``TtsWorker``), and the voice
catalog. Models load from ``models/``; the provider (CPU or CUDA) is chosen and reported, never
fallen back to in silence.
"""

from parley.appliance.speech.audio import InvalidAudio
from parley.appliance.speech.provider import ProviderChoice, ProviderUnavailable, choose_provider
from parley.appliance.speech.stt import Recognizer, RecognizerSettings, Transcript, UnsupportedModelDir
from parley.appliance.speech.tts import AudioChunk, Synthesizer, split_sentences, speakable
from parley.appliance.speech.voices import UnknownVoice, VoiceInfo, find_voice, list_voices
from parley.appliance.speech.workers import SttWorker, TtsWorker

__all__ = [
    "AudioChunk", "InvalidAudio", "ProviderChoice", "ProviderUnavailable", "Recognizer", "RecognizerSettings",
    "SttWorker", "Synthesizer", "Transcript", "TtsWorker", "UnknownVoice", "UnsupportedModelDir", "VoiceInfo",
    "choose_provider", "find_voice", "list_voices", "speakable", "split_sentences",
]
