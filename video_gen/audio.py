"""The sound of a video: a model's audio as 16-bit PCM of exactly the video's length, `audio.wav`, an audio track
muxed into an MP4 (AAC) or WebM (Opus), and reading it back.

PCM here is always an int16 numpy array shaped (samples, channels), the layout of a WAV's data chunk and of
ffmpeg's s16le. Everything goes through the ffmpeg bundled with imageio-ffmpeg (there is no ffprobe) and the
standard library's `wave`; torch is never imported (a model's tensor is converted through its own methods). Writes
are atomic: a temporary file beside the target replaced in one `os.replace`, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from video_gen.errors import GenerationFailed, InvalidRequest

WAV_NAME = "audio.wav"  # beside the frames of `--format png`
# The codec each container carries, and its bitrate (stereo). Both are lossy; measured with this module at 24 kHz
# (tests/test_ltx2_core.py): a two-tone signal decodes from AAC-LC 192k within 0.052 of full scale (0.001-0.0024
# RMS over 1-5 s) and from Opus 128k within 0.052 (0.0025-0.0028 RMS); white noise from AAC within 0.018 RMS but
# with peaks to 0.5 (AAC drops what a listener cannot hear). Sample-exact sound lives in audio.wav only.
AUDIO_CODECS = {"mp4": ("aac", "192k"), "webm": ("libopus", "128k")}
# libopus takes only these input rates; others are resampled to 48 kHz (Opus's own rate) on the way in.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_STDERR_TAIL_CHARS = 2000


class AudioError(GenerationFailed):
    """ffmpeg failed muxing or decoding sound; the message ends with the tail of its stderr."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds of sound: `streams` audio streams, the first one's codec, rate and channels, and its
    duration from the samples it decodes to (not the container's header, which rounds to AAC/Opus frames)."""

    streams: int
    codec: str
    sample_rate: int
    channels: int
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


@dataclasses.dataclass(frozen=True, eq=False)
class Sound:
    """A video's sound as the program passes it around: int16 PCM (samples, channels) at `sample_rate`, the model's
    own rate. A family's `run` returns one beside its frames, exactly as long as they last (`from_model`); the job
    joins segments, fits it to the written video (`fitted`), and the writers mux it or write `audio.wav`."""

    pcm: np.ndarray
    sample_rate: int

    def __post_init__(self):
        object.__setattr__(self, "pcm", _checked_pcm(self.pcm))
        object.__setattr__(self, "sample_rate", _checked_rate(self.sample_rate))

    @classmethod
    def from_model(cls, audio, sample_rate: int, num_frames: int, fps: float) -> Sound:
        """A pipeline's float sound ((batch, channels, samples) in [-1, 1]) cut or padded to the length of
        `num_frames` frames at `fps` (see `to_pcm`)."""
        return cls(to_pcm(audio, samples=samples_for(num_frames, fps, sample_rate)), sample_rate)

    @property
    def samples(self) -> int:
        return len(self.pcm)

    @property
    def channels(self) -> int:
        return int(self.pcm.shape[1])

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def frames(self, start: int, stop: int, fps: float) -> Sound:
        """The samples that play during frames [start, stop) of a video at `fps` (silence past its end): a
        segment's sound without its first frame, a seam, a cut. Boundaries are rounded the same way for every
        piece, so pieces cut at consecutive frames join without a gap or an overlap."""
        first, last = sample_at(start, fps, self.sample_rate), sample_at(stop, fps, self.sample_rate)
        return Sound(fit_length(self.pcm[first:last], last - first), self.sample_rate) if last > first \
            else Sound(np.zeros((1, self.channels), np.int16), self.sample_rate)

    def fitted(self, num_frames: int, fps: float) -> Sound:
        """The sound from its start, cut or padded with silence to last exactly `num_frames` at `fps`."""
        return Sound(fit_length(self.pcm, samples_for(num_frames, fps, self.sample_rate)), self.sample_rate)

    def then(self, other: Sound) -> Sound:
        """This sound, then `other` (resampled to this one's rate when they differ)."""
        other = other.resampled(self.sample_rate)
        if other.channels != self.channels:
            other = Sound(_mixed(other.pcm, self.channels), self.sample_rate)
        return Sound(np.concatenate([self.pcm, other.pcm]), self.sample_rate)

    def resampled(self, sample_rate: int) -> Sound:
        if sample_rate == self.sample_rate:
            return self
        return Sound(resample(self.pcm, self.sample_rate, sample_rate), sample_rate)

    @property
    def sha256(self) -> str:
        return pcm_sha256(self.pcm)

    def metadata(self, format: str) -> dict:
        """What the metadata of a video written in `format` records of its sound."""
        stream = {"mp4": "aac", "webm": "opus", "png": WAV_NAME}.get(format)
        return {"made": True, "written": stream is not None, "stream": stream, "sample_rate": self.sample_rate,
                "channels": self.channels, "samples": self.samples, "duration_s": round(self.duration_s, 4),
                "sha256": self.sha256}

    @classmethod
    def read(cls, path, *, sample_rate: int | None = None) -> Sound | None:
        """The sound of a video (`read_audio`), or None when it has none."""
        found = read_audio(path, sample_rate=sample_rate)
        return None if found is None else cls(*found)


def silence(samples: int, sample_rate: int, channels: int = 2) -> Sound:
    return Sound(np.zeros((max(1, samples), channels), np.int16), sample_rate)


def sample_at(frame: int, fps: float, sample_rate: int) -> int:
    """The first sample of frame `frame` (0-based) of a video at `fps`: frame / fps * rate, rounded."""
    rate = Fraction(float(fps)).limit_denominator()
    return round(Fraction(int(frame)) / rate * sample_rate)


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """`pcm` at `from_rate` as `to_rate` (ffmpeg's resampler), the same length in seconds."""
    pcm = _checked_pcm(pcm)
    channels = pcm.shape[1]
    with tempfile.NamedTemporaryFile(prefix=".pcm-", suffix=".s16le", delete=False) as raw:
        raw.write(pcm.astype("<i2").tobytes())
    try:
        out = _run_ffmpeg(["-f", "s16le", "-ar", str(_checked_rate(from_rate)), "-ac", str(channels), "-i", raw.name,
                           "-f", "s16le", "-ar", str(_checked_rate(to_rate)), "-ac", str(channels), "-"],
                          "resampling sound")
    finally:
        Path(raw.name).unlink(missing_ok=True)
    data = np.frombuffer(out, dtype="<i2").reshape(-1, channels).astype(np.int16)
    return fit_length(data, round(len(pcm) * to_rate / from_rate))


def _mixed(pcm: np.ndarray, channels: int) -> np.ndarray:
    """`pcm` with `channels` channels: a mono sound copied to each, others averaged down to mono first."""
    mono = pcm.astype(np.int32).mean(axis=1, keepdims=True).round().astype(np.int16)
    return np.repeat(mono, channels, axis=1)


def carries_audio(format: str) -> bool:
    """Whether a video written in `format` can hold its sound: mp4 and webm in the file, png as audio.wav beside
    the frames; gif never."""
    return format in AUDIO_CODECS or format == "png"


def samples_for(num_frames: int, fps: float, sample_rate: int) -> int:
    """How many samples last exactly as long as `num_frames` at `fps`: frames / fps * sample_rate, rounded, with
    the rate taken as the same fraction video_io hands ffmpeg (24000/1001 stays exact)."""
    if num_frames < 1:
        raise InvalidRequest("num_frames", f"must be at least 1 to give sound a length, got {num_frames}")
    if not fps > 0:
        raise InvalidRequest("fps", f"must be a positive number, got {fps!r}")
    if sample_rate < 1:
        raise InvalidRequest("sample_rate", f"must be a positive number of samples a second, got {sample_rate}")
    rate = Fraction(float(fps)).limit_denominator()
    return round(Fraction(num_frames) / rate * sample_rate)


def to_pcm(audio, *, samples: int) -> np.ndarray:
    """A model's sound as int16 PCM (samples, channels) of exactly `samples`: the first item of a batch of
    (batch, channels, samples) floats in [-1, 1] (torch tensor or numpy; a single (channels, samples) is taken as
    it is), clipped, scaled by 32767 and rounded, then cut or padded with silence at the end.

    LTX-2's `out.audio` is a float tensor [batch, 2, samples] even with output_type="np", and a little shorter
    than frames / fps (9 frames at 24 fps: 7920 samples for 9000 at 24 kHz), hence the padding."""
    if hasattr(audio, "detach"):  # a torch tensor, converted without importing torch here
        audio = audio.detach().float().cpu().numpy()
    array = np.asarray(audio)
    if array.ndim == 3:
        array = array[0]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidRequest("audio", f"must be floats shaped (batch, channels, samples) or (channels, samples), "
                                      f"got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise GenerationFailed("the model's sound holds NaN or infinite samples")
    pcm = np.round(np.clip(array.T, -1.0, 1.0) * 32767.0).astype(np.int16)
    return fit_length(pcm, samples)


def fit_length(pcm: np.ndarray, samples: int) -> np.ndarray:
    """`pcm` (samples, channels) cut to `samples`, or padded at the end with silence up to it."""
    if samples < 0:
        raise InvalidRequest("samples", f"must not be negative, got {samples}")
    if len(pcm) >= samples:
        return np.ascontiguousarray(pcm[:samples])
    silence = np.zeros((samples - len(pcm), pcm.shape[1]), dtype=np.int16)
    return np.concatenate([pcm, silence])


def pcm_sha256(pcm: np.ndarray) -> str:
    """The SHA-256 of the PCM as a WAV's data chunk holds it (interleaved little-endian int16), for metadata."""
    return hashlib.sha256(_checked_pcm(pcm).astype("<i2").tobytes()).hexdigest()


def write_wav(path, pcm: np.ndarray, sample_rate: int) -> Path:
    """Write `pcm` as a 16-bit PCM WAV at `sample_rate` (the model's own rate), atomically; return its path."""
    pcm, sample_rate = _checked_pcm(pcm), _checked_rate(sample_rate)
    target = Path(path)
    temporary = target.with_name(f".{target.name}.partial-{secrets.token_hex(8)}")
    try:
        with wave.open(str(temporary), "wb") as output:
            output.setnchannels(pcm.shape[1])
            output.setsampwidth(2)
            output.setframerate(sample_rate)
            output.writeframes(pcm.astype("<i2").tobytes())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def read_wav(path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV's samples (samples, channels) and rate."""
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2:
            raise InvalidRequest("audio", f"{path} holds {8 * source.getsampwidth()}-bit samples; only 16-bit PCM "
                                          "WAV files are read")
        channels = source.getnchannels()
        data = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        return data.reshape(-1, channels).astype(np.int16), source.getframerate()


def mux_audio(video_path, pcm: np.ndarray, sample_rate: int, format: str) -> Path:
    """Give the video file `video_path` (written by video_io: mp4 or webm, no sound yet) the audio track `pcm` at
    `sample_rate`: AAC in mp4, Opus in webm. The video stream and the file's tags (video_io's metadata comment) are
    copied untouched; the result replaces `video_path` atomically. Call it on video_io's temporary file before it
    is moved into place, so the final name only ever holds the finished video with its sound."""
    if format not in AUDIO_CODECS:
        allowed = ", ".join(AUDIO_CODECS)
        raise InvalidRequest("format", f"{format!r} cannot carry an audio track (allowed: {allowed}; png writes "
                                       f"{WAV_NAME} beside the frames, gif has no sound)")
    pcm, sample_rate = _checked_pcm(pcm), _checked_rate(sample_rate)
    video = Path(video_path)
    codec, bitrate = AUDIO_CODECS[format]
    encode_rate = sample_rate if codec != "libopus" or sample_rate in _OPUS_RATES else 48000
    output = video.with_name(f".{video.stem}.audio-{secrets.token_hex(8)}{video.suffix}")
    # The PCM goes through a temporary raw file, not a pipe: ffmpeg reads both inputs while writing, and a pipe it
    # does not drain while it waits on the video input could stall the writer.
    with tempfile.NamedTemporaryFile(dir=video.parent, prefix=".pcm-", suffix=".s16le", delete=False) as raw:
        raw.write(pcm.astype("<i2").tobytes())
    try:
        command = ["-i", _ffmpeg_path(video), "-f", "s16le", "-ar", str(sample_rate),
                   "-ac", str(pcm.shape[1]), "-i", raw.name, "-map", "0:v:0", "-map", "1:a:0",
                   "-map_metadata", "0", "-c:v", "copy", "-c:a", codec, "-b:a", bitrate, "-ar", str(encode_rate)]
        if format == "mp4":
            command += ["-movflags", "+faststart"]
        _run_ffmpeg(command + ["-f", format, _ffmpeg_path(output)], f"muxing the sound into {video.name}")
        os.replace(output, video)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    finally:
        Path(raw.name).unlink(missing_ok=True)
    return video


def read_audio(path, *, sample_rate: int | None = None) -> tuple[np.ndarray, int] | None:
    """The sound of a video as PCM (samples, channels) and its rate, or None when it has none: the first audio
    stream of an mp4 / webm (decoded by ffmpeg, resampled to `sample_rate` when given), `audio.wav` inside a png
    frames folder, or a .wav file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / WAV_NAME
        if not path.is_file():
            return None
    if path.suffix.lower() == ".wav":
        pcm, rate = read_wav(path)
        if sample_rate is not None and sample_rate != rate:
            raise InvalidRequest("sample_rate", f"{path} is {rate} Hz, not {sample_rate} Hz")
        return pcm, rate
    stream = _audio_streams(path)
    if not stream:
        return None
    _, rate, channels = stream[0]
    rate = sample_rate or rate
    raw = _run_ffmpeg(["-i", _ffmpeg_path(path), "-map", "0:a:0", "-f", "s16le", "-acodec", "pcm_s16le",
                       "-ar", str(rate), "-ac", str(channels), "-"], f"decoding the sound of {path.name}")
    return np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.int16), rate


def probe_audio(path) -> AudioInfo | None:
    """Whether a video (or png frames folder, or .wav) has sound, and what: None when it has no audio stream."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video at {path}")
    if path.is_dir() or path.suffix.lower() == ".wav":
        read = read_audio(path)
        if read is None:
            return None
        pcm, rate = read
        return AudioInfo(streams=1, codec="pcm_s16le", sample_rate=rate, channels=pcm.shape[1], samples=len(pcm))
    streams = _audio_streams(path)
    if not streams:
        return None
    codec, rate, channels = streams[0]
    pcm, _ = read_audio(path)
    return AudioInfo(streams=len(streams), codec=codec, sample_rate=rate, channels=channels, samples=len(pcm))


def _checked_rate(sample_rate) -> int:
    whole = isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool)
    if not whole or not 1 <= sample_rate <= 768000:
        raise InvalidRequest("sample_rate", f"must be a whole number of samples a second from 1 to 768000, "
                                            f"got {sample_rate!r}")
    return int(sample_rate)


def _checked_pcm(pcm) -> np.ndarray:
    array = np.asarray(pcm)
    if array.dtype != np.int16 or array.ndim != 2 or not 1 <= array.shape[1] <= 8 or len(array) == 0:
        raise InvalidRequest("audio", f"must be int16 PCM shaped (samples, channels) with 1 to 8 channels and at "
                                      f"least one sample, got {array.dtype} {array.shape}")
    return array


# "Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 24000 Hz, stereo, fltp, 191 kb/s (default)"
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio: (\w+).*?, (\d+) Hz, ([^,]+)", re.MULTILINE)
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _audio_streams(path: Path) -> list[tuple[str, int, int]]:
    """(codec, rate, channels) of each audio stream, from the input summary `ffmpeg -i` prints."""
    # With no output file ffmpeg always exits 1 after printing the summary, so the exit code says nothing.
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-i", _ffmpeg_path(path)]
    log = subprocess.run(command, capture_output=True).stderr.decode("utf-8", "replace")
    if "Input #0" not in log:
        raise AudioError(f"ffmpeg could not read {path}:\n{log.strip()[-_STDERR_TAIL_CHARS:]}")
    streams = []
    for codec, rate, layout in _AUDIO_STREAM.findall(log):
        layout = layout.strip().split("(")[0].strip()  # "stereo", "5.1(side)", "3 channels"
        count = re.match(r"(\d+) channels", layout)
        channels = _LAYOUT_CHANNELS.get(layout) or (int(count.group(1)) if count else 0)
        if not channels:
            raise AudioError(f"could not tell how many channels the sound of {path.name} has from {layout!r}")
        streams.append((codec, int(rate), channels))
    return streams


def _ffmpeg() -> str:
    # imported here: the family modules import this one, and the registry is read where imageio-ffmpeg is absent
    # (the GPU runner's case list, `bench/gpu/run.sh next --list`)
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_path(path: Path) -> str:
    # Absolute, so a name like "-x.mp4" or "a:b.mp4" is not taken for an option or a protocol.
    return str(Path(path).absolute())


def _run_ffmpeg(arguments: list[str], what: str) -> bytes:
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", *arguments]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        tail = result.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL_CHARS:]
        raise AudioError(f"ffmpeg failed {what} (exit code {result.returncode}):\n{tail}")
    return result.stdout
