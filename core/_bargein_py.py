"""The barge-in detector: caller speech the agent's own echo cannot explain, frame by frame.

While the agent speaks, the playout frame is the reference. The echo path from it to the mic is
learnt online: its delay from the cross-correlation of the two log-energy envelopes (5 ms
blocks, 0 to ``max_echo_delay_ms`` lags), its gain (the echo return loss) in each of three bands
as the ratio of mic to reference energy over the last seconds, learnt only on frames believed to
hold echo alone. A frame is double talk when the mic has clearly more energy than the predicted
echo plus the noise floor; enough double talk in a row is a barge-in.

A gain per band is what lets a coloured echo path be predicted sound by sound: a telephone path
carries a vowel back nearly whole but hardly any of an "s" above 3.4 kHz, so one broadband gain
is an average that a vowel's echo overshoots. With three bands the predicted echo follows the
path's shape, and a caller's speech where the path carries no echo counts in full.

This plain-Python module is also the compiled detector: ``_bargein_c.py`` is a symlink to it and
``_bargein_c.pxd`` gives it C types (Cython's pure-Python mode).
"""

from array import array

from cython.cimports.libc.math import cos, log, sin, sqrt

BLOCK_MS = 5
"""Energy block for the echo path: fine enough to place an echo delay to 5 ms."""
ENVELOPE_FLOOR = 1e-10
"""Energy (-100 dBFS) added before the log, so digital silence has a finite envelope."""
ENVELOPE_RATE = 0.005
"""Weight of a new block in the envelope statistics: a one-second memory (200 blocks)."""
DELAY_MIN_BLOCKS = 100
"""Blocks of agent speech before the delay estimate is trusted (half a second)."""
DELAY_MIN_CORRELATION = 0.3
"""Normalized envelope correlation at the best lag needed to trust that lag."""
FAR_ACTIVE_ENERGY = 1e-7
"""Reference energy (-70 dBFS) above which the agent is audible and the echo gain can be learnt."""
GAIN_MEMORY_FRAMES = 100
"""Frames of echo the gain is averaged over: two seconds, so it follows a changing path but not one word."""
GAIN_PRIOR_FRAMES = 25
"""Weight of ``initial_erl_db`` in frames: the first half second of echo only moves the gain part way."""
GAIN_MIN = 1e-6
"""Lowest echo gain (60 dB of echo return loss): below that the echo is under the noise."""
GAIN_MAX = 10.0
"""Highest echo gain (the echo 10 dB louder than the reference, a loud speakerphone)."""
FLOOR_RISE = 10.0 ** (0.01 / 10)
"""Noise-floor rise per frame (0.5 dB a second at 20 ms): slow, so speech does not lift it."""
ENERGY_MAX = 1e30
"""Above this an energy or a sample is broken input (inf, or NaN, which fails every comparison)."""
PI = 3.141592653589793
N_BANDS = 3
"""Bands the echo gain is learnt in: below ``BAND_EDGES_HZ[0]``, between the edges, above the last."""
BAND_EDGES_HZ = (1000.0, 3400.0)
"""Band edges: voicing (which a line's 300 Hz high-pass colours), the rest of the telephone band,
and what a narrowband echo path does not carry back at all."""
FILTER_STATE = 4 * 2
"""History of one signal's two band-splitting biquads: two inputs and two outputs each."""
NEAR = 0
"""Where the mic's filter history starts in ``_filter_state``."""
FAR = FILTER_STATE
"""Where the reference's filter history starts in ``_filter_state``."""


class BargeInDetector:
    """Decides, frame by frame while ``agent_speaking``, whether the caller is really talking.

    ``feed`` returns True once per agent utterance, in the frame where barge-in is declared;
    ``barge_in_sample`` is then where the caller's double talk began and ``event_sample`` the
    end of the deciding frame. The echo path it learnt is kept across utterances of the call.
    """

    def __init__(self, settings, sample_rate, frame_ms=20):
        if sample_rate <= 0 or frame_ms <= 0 or sample_rate * BLOCK_MS % 1000 or frame_ms % BLOCK_MS:
            raise ValueError(
                f"a {frame_ms} ms frame at {sample_rate} Hz does not split into {BLOCK_MS} ms blocks: "
                "use the call rate (8000 or 16000 Hz) and 10, 20 or 30 ms frames")
        self.frame_samples = sample_rate * frame_ms // 1000
        self.block_samples = sample_rate * BLOCK_MS // 1000
        self.blocks_per_frame = frame_ms // BLOCK_MS
        self.min_samples = settings.barge_in_min_ms * sample_rate // 1000
        self.bridge_samples = settings.bridge_ms * sample_rate // 1000
        self.n_lags = settings.max_echo_delay_ms // BLOCK_MS + 1
        self.echo_margin = 10.0 ** (settings.echo_margin_db / 10)
        self.noise_margin = 10.0 ** (settings.noise_margin_db / 10)
        self.agent_speaking = False
        self.echo_gain = 10.0 ** (-settings.initial_erl_db / 10)
        self._band_gain = array("d", [self.echo_gain] * N_BANDS)
        self._echo_energy = array("d", bytes(8 * N_BANDS))
        self._reference_energy = array("d", bytes(8 * N_BANDS))
        self._gain_frames = 0
        self.echo_delay_samples = 0
        self.delay_known = False
        self.noise_floor = 0.0
        self._band_floor = array("d", bytes(8 * N_BANDS))
        self.position = 0
        self.event_sample = 0
        self.barge_in_sample = 0
        self.frames_invalid = 0
        self.frames_out_of_order = 0
        self._near_last = 0.0
        self._far_last = 0.0
        self._band_filter = array("d", [c for edge in BAND_EDGES_HZ for c in _lowpass_biquad(edge, sample_rate)])
        self._filter_state = array("d", bytes(8 * 2 * FILTER_STATE))
        self._far_energy = array("d", bytes(8 * N_BANDS * self.n_lags))
        self._far_envelope = array("d", bytes(8 * self.n_lags))
        self._correlation = array("d", bytes(8 * self.n_lags))
        self._near_energy = array("d", bytes(8 * self.blocks_per_frame))
        self._near_band = array("d", bytes(8 * N_BANDS))
        self._echo_band = array("d", bytes(8 * N_BANDS))
        self._blocks = 0
        self._blocks_heard = 0
        self._delay_blocks = 0
        self._near_mean = 0.0
        self._far_mean = 0.0
        self._near_variance = 0.0
        self._far_variance = 0.0
        self._run_samples = 0
        self._gap_samples = 0
        self._declared = False

    def feed(self, near_frame, far_frame, frame_start_sample):
        """Take one mic frame and the reference frame played at the same time; True on barge-in.

        A frame of the wrong length is a bug in the caller and raises ValueError. A frame with
        NaN or infinite mic samples is counted in ``frames_invalid`` and taught nothing (a broken
        reference block is taken as the loudest recent one); a frame that starts before the end
        of the previous one is counted in ``frames_out_of_order`` and ignored.
        """
        if near_frame.shape[0] != self.frame_samples or far_frame.shape[0] != self.frame_samples:
            raise ValueError(
                f"frames must hold {self.frame_samples} samples, got {near_frame.shape[0]} (near) and "
                f"{far_frame.shape[0]} (far): pass whole frames of the rate and length the detector was built for")
        if frame_start_sample < self.position:
            self.frames_out_of_order += 1
            return False
        self.position = frame_start_sample + self.frame_samples
        near = self._take_blocks(near_frame, far_frame)
        if not near <= ENERGY_MAX:
            self.frames_invalid += 1
            return False
        self._track_noise_floor(near)
        if not self.agent_speaking:
            self._run_samples = 0
            self._gap_samples = 0
            self._declared = False
            return False
        self._learn_delay()
        echo = self._echo_energy_at_unit_gain()
        predicted = 0.0
        for k in range(N_BANDS):
            predicted += self._band_gain[k] * self._echo_band[k]
        double_talk = near > self.echo_margin * predicted + self.noise_margin * self.noise_floor
        # The gain is the echo relative to the reference at the echo delay: learnt once that is known.
        if self.delay_known and not double_talk and self._run_samples == 0 and echo > FAR_ACTIVE_ENERGY:
            self._learn_gain()
        if self._declared:
            return False
        if double_talk:
            if self._run_samples == 0:
                self.barge_in_sample = frame_start_sample
            self._run_samples += self.frame_samples
            self._gap_samples = 0
            if self._run_samples >= self.min_samples:
                self._declared = True
                self.event_sample = self.position
                return True
        elif self._run_samples > 0:
            self._gap_samples += self.frame_samples
            if self._gap_samples > self.bridge_samples:
                self._run_samples = 0
                self._gap_samples = 0
        return False

    def _take_blocks(self, near_frame, far_frame):
        """Band energies of both frames, the reference's into the ring; returns the mic frame's energy.

        Energies are of the first difference (a pre-emphasis, as in speech coding): the voice's
        low end, which a telephone echo path barely carries, would otherwise swing the echo's
        level from one sound to the next while the path itself stays the same. Each sample is
        split into the bands by two low-passes: below the first edge, between them, the rest.
        """
        near_total = 0.0
        for k in range(N_BANDS):
            self._near_band[k] = 0.0
        for b in range(self.blocks_per_frame):
            near_low = 0.0
            near_mid = 0.0
            near_high = 0.0
            far_low = 0.0
            far_mid = 0.0
            far_high = 0.0
            for i in range(b * self.block_samples, (b + 1) * self.block_samples):
                x = float(near_frame[i])
                y = float(far_frame[i])
                difference = x - self._near_last
                low = self._lowpass(0, difference, NEAR)
                telephone = self._lowpass(1, difference, NEAR)
                near_low += low * low
                near_mid += (telephone - low) * (telephone - low)
                near_high += (difference - telephone) * (difference - telephone)
                difference = y - self._far_last
                low = self._lowpass(0, difference, FAR)
                telephone = self._lowpass(1, difference, FAR)
                far_low += low * low
                far_mid += (telephone - low) * (telephone - low)
                far_high += (difference - telephone) * (difference - telephone)
                self._near_last = x
                self._far_last = y
            slot = (self._blocks + b) % self.n_lags
            far_sum = (far_low + far_mid + far_high) / self.block_samples
            if far_sum <= ENERGY_MAX:
                self._far_energy[slot * N_BANDS] = far_low / self.block_samples
                self._far_energy[slot * N_BANDS + 1] = far_mid / self.block_samples
                self._far_energy[slot * N_BANDS + 2] = far_high / self.block_samples
            else:
                # A broken reference block counts as the loudest recent one, so its echo stays explained.
                far_sum = 0.0
                for k in range(N_BANDS):
                    self._far_energy[slot * N_BANDS + k] = self._loudest_recent_far(k)
                    far_sum += self._far_energy[slot * N_BANDS + k]
            self._far_envelope[slot] = log(far_sum + ENVELOPE_FLOOR)
            self._near_band[0] += near_low / self.block_samples
            self._near_band[1] += near_mid / self.block_samples
            self._near_band[2] += near_high / self.block_samples
            self._near_energy[b] = (near_low + near_mid + near_high) / self.block_samples
            near_total += self._near_energy[b]
        self._blocks += self.blocks_per_frame
        for k in range(N_BANDS):
            self._near_band[k] /= self.blocks_per_frame
        # Broken input must not stay in the pre-emphasis or the filters' history.
        if not -ENERGY_MAX <= self._near_last <= ENERGY_MAX or not self._filter_settled(NEAR):
            self._near_last = 0.0
            self._reset_filter(NEAR)
        if not -ENERGY_MAX <= self._far_last <= ENERGY_MAX or not self._filter_settled(FAR):
            self._far_last = 0.0
            self._reset_filter(FAR)
        return near_total / self.blocks_per_frame

    def _lowpass(self, j, x, signal):
        """One sample of ``signal`` (NEAR or FAR) through low-pass ``j``, a biquad in direct form I."""
        c = j * 5
        s = signal + j * 4
        y = (self._band_filter[c] * x + self._band_filter[c + 1] * self._filter_state[s]
             + self._band_filter[c + 2] * self._filter_state[s + 1] - self._band_filter[c + 3] * self._filter_state[s + 2]
             - self._band_filter[c + 4] * self._filter_state[s + 3])
        self._filter_state[s + 1] = self._filter_state[s]
        self._filter_state[s] = x
        self._filter_state[s + 3] = self._filter_state[s + 2]
        self._filter_state[s + 2] = y
        return y

    def _filter_settled(self, signal):
        for i in range(signal, signal + FILTER_STATE):
            if not -ENERGY_MAX <= self._filter_state[i] <= ENERGY_MAX:
                return False
        return True

    def _reset_filter(self, signal):
        for i in range(signal, signal + FILTER_STATE):
            self._filter_state[i] = 0.0

    def _loudest_recent_far(self, k):
        loudest = 0.0
        for d in range(self.n_lags):
            if self._far_energy[d * N_BANDS + k] > loudest:
                loudest = self._far_energy[d * N_BANDS + k]
        return loudest

    def _track_noise_floor(self, near):
        self.noise_floor = _tracked_floor(self.noise_floor, near)
        for k in range(N_BANDS):
            self._band_floor[k] = _tracked_floor(self._band_floor[k], self._near_band[k])

    def _learn_delay(self):
        """Update the envelope cross-correlation per lag and take the best lag as the echo delay."""
        first = self._blocks - self.blocks_per_frame
        for b in range(self.blocks_per_frame):
            t = first + b
            self._blocks_heard += 1
            # A plain running mean until the one-second memory is full, so the first blocks count.
            rate = 1.0 / self._blocks_heard if self._blocks_heard * ENVELOPE_RATE < 1.0 else ENVELOPE_RATE
            near_envelope = log(self._near_energy[b] + ENVELOPE_FLOOR)
            far_envelope = self._far_envelope[t % self.n_lags]
            self._near_mean += rate * (near_envelope - self._near_mean)
            self._far_mean += rate * (far_envelope - self._far_mean)
            near_deviation = near_envelope - self._near_mean
            far_deviation = far_envelope - self._far_mean
            self._near_variance += rate * (near_deviation * near_deviation - self._near_variance)
            self._far_variance += rate * (far_deviation * far_deviation - self._far_variance)
            for d in range(self.n_lags):
                lagged = self._far_envelope[(t - d + self.n_lags) % self.n_lags] - self._far_mean
                self._correlation[d] += rate * (near_deviation * lagged - self._correlation[d])
        best = 0
        for d in range(1, self.n_lags):
            if self._correlation[d] > self._correlation[best]:
                best = d
        scale = sqrt(self._near_variance * self._far_variance)
        if self._blocks_heard >= DELAY_MIN_BLOCKS and self._correlation[best] > DELAY_MIN_CORRELATION * scale:
            self._delay_blocks = best
            self.echo_delay_samples = best * self.block_samples
            self.delay_known = True

    def _echo_energy_at_unit_gain(self):
        """The frame's reference energy at the echo delay, per band into ``_echo_band`` and in
        all (the loudest block within one block of it, to allow for a smeared path); any delay
        in range while the delay is not yet known."""
        if self.delay_known:
            low = self._delay_blocks - 1 if self._delay_blocks > 0 else 0
            high = self._delay_blocks + 1 if self._delay_blocks + 1 < self.n_lags else self.n_lags - 1
        else:
            low = 0
            high = self.n_lags - 1
        first = self._blocks - self.blocks_per_frame
        total = 0.0
        for k in range(N_BANDS):
            band = 0.0
            for b in range(self.blocks_per_frame):
                loudest = 0.0
                for d in range(low, high + 1):
                    energy = self._far_energy[((first + b - d + self.n_lags) % self.n_lags) * N_BANDS + k]
                    if energy > loudest:
                        loudest = energy
                band += loudest
            self._echo_band[k] = band / self.blocks_per_frame
            total += self._echo_band[k]
        return total

    def _learn_gain(self):
        """Track each band's echo gain as the ratio of the echo-only mic energy to the reference
        energy at the delay, both averaged over ``GAIN_MEMORY_FRAMES``: loud frames weigh most, so
        a run of quiet or out-of-band reference does not talk the gain down. ``echo_gain`` is the
        same ratio over all bands: the echo return loss of the path as a whole."""
        if self._gain_frames == 0:
            # The prior: as if the first frame had been heard at the initial echo return loss, and
            # at the loudest the reference has lately been, so a quiet first frame (a word's tail)
            # cannot outweigh it.
            for k in range(N_BANDS):
                self._reference_energy[k] = self._loudest_recent_far(k)
                self._echo_energy[k] = self.echo_gain * self._reference_energy[k]
        self._gain_frames += 1
        weight = 1.0 / (self._gain_frames + GAIN_PRIOR_FRAMES)
        if weight < 1.0 / GAIN_MEMORY_FRAMES:
            weight = 1.0 / GAIN_MEMORY_FRAMES
        echo_total = 0.0
        reference_total = 0.0
        for k in range(N_BANDS):
            excess = self._near_band[k] - self._band_floor[k]
            self._echo_energy[k] += weight * ((excess if excess > 0.0 else 0.0) - self._echo_energy[k])
            self._reference_energy[k] += weight * (self._echo_band[k] - self._reference_energy[k])
            if self._reference_energy[k] > 0.0:
                self._band_gain[k] = _clamped_gain(self._echo_energy[k] / self._reference_energy[k])
            echo_total += self._echo_energy[k]
            reference_total += self._reference_energy[k]
        self.echo_gain = _clamped_gain(echo_total / reference_total)


def _tracked_floor(floor, energy):
    """A noise floor that drops at once to a quieter frame and otherwise rises slowly."""
    if energy < floor or floor == 0.0:
        return energy if energy > ENVELOPE_FLOOR else ENVELOPE_FLOOR
    return floor * FLOOR_RISE


def _clamped_gain(gain):
    if gain < GAIN_MIN:
        return GAIN_MIN
    if gain > GAIN_MAX:
        return GAIN_MAX
    return gain


def _lowpass_biquad(cutoff_hz, sample_rate):
    """(b0, b1, b2, a1, a2) of a Butterworth low-pass (Q = 1/sqrt 2, the audio EQ cookbook's form)."""
    omega = 2.0 * PI * cutoff_hz / sample_rate
    alpha = sin(omega) / (2.0 * sqrt(0.5))
    a0 = 1.0 + alpha
    b1 = (1.0 - cos(omega)) / a0
    return (b1 / 2.0, b1, b1 / 2.0, -2.0 * cos(omega) / a0, (1.0 - alpha) / a0)
