"""Videos through a frame function: streamed decode, encode and remux with PyAV (``anime-core[video]``).

:func:`transcode` reads a video packet by packet. Decoded frames are turned upright (the display
matrix phones record), handed to ``fn`` in batches as RGB arrays, turned back and encoded with
the input's own timestamps, so the frame rate, frame count, duration and rotation are kept.
Audio and subtitle packets are copied without re-encoding when the output container takes their
codec; audio it does not take is re-encoded (AAC, or the container's default) and subtitles it
does not take are dropped, each with a note. Memory holds one batch of frames, the encoder's
look-ahead and the packets waiting to be interleaved, never the whole video.

The output is written to a temp file renamed at the end (:func:`anime_core.fsutil.atomic_path`):
an error or Ctrl-C leaves nothing under the final name. A damaged input (a decoding error, or
fewer frames than the container announces) fails with the reason, unless ``keep_partial``, which
keeps the frames decoded before the damage. PyAV is imported inside functions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from anime_core import budget
from anime_core.errors import UsageError
from anime_core.fsutil import atomic_path
from anime_core.inference.io import DEFAULT_MAX_PIXELS, BadImage

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"}
DEFAULT_CODEC = "auto"  # libx264 where the container takes H.264, else the container's default
DEFAULT_CRF = 18
DEFAULT_PIX_FMT = "yuv420p"
CRF_ENCODERS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}
VARIABLE_FPS = 0x0400  # AVFMT_VARIABLE_FPS: the container stores timestamps, not a fixed frame rate
INSTALL = "install PyAV: pip install 'anime-core[video]'"

#: ``fn`` takes upright RGB uint8 frames (H, W, 3) and returns one RGB uint8 frame per input
FrameFn = Callable[[list[np.ndarray]], list[np.ndarray]]


class BadVideo(BadImage):
    """A video that cannot be processed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class EncodeOptions:
    """Video encoder settings of ``anime run``: codec, quality (CRF, or a bitrate), pixel format."""

    codec: str = DEFAULT_CODEC
    crf: int = DEFAULT_CRF
    bitrate: int | None = None  # bits/s; replaces the CRF
    pix_fmt: str = DEFAULT_PIX_FMT


@dataclass
class VideoResult:
    """What :func:`transcode` wrote: frames, notes for the user, and the damage when ``keep_partial`` kept frames."""

    frames: int = 0
    notes: list[str] = field(default_factory=list)
    damage: str | None = None


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise BadVideo(f"reading videos needs PyAV; {INSTALL}") from None
    return av


def parse_bitrate(text: str | None) -> int | None:
    """``"8M"``, ``"2500k"``, ``"800000"`` -> bits/s; anything else is a usage error."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise UsageError(f"--bitrate '{text}' is not a bitrate; write e.g. 8M or 2500k")
    return int(float(m[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[m[2].lower()])


def check_options(options: EncodeOptions) -> None:
    """Refuse an encoder or pixel format this PyAV build lacks (usage error, before any file is read)."""
    try:
        import av
    except ImportError:
        return  # each video then fails with the install hint, images still run
    try:
        av.VideoFormat(options.pix_fmt)
    except ValueError:
        raise UsageError(f"unknown --pix-fmt '{options.pix_fmt}'; use e.g. yuv420p or yuv444p") from None
    name = options.codec if options.codec != DEFAULT_CODEC else "libx264"  # what auto picks for most containers
    if name not in av.codecs_available and options.codec == DEFAULT_CODEC:
        return
    codec = _encoder(av, name)
    formats = [f.name for f in codec.video_formats or ()]
    if formats and options.pix_fmt not in formats:
        raise UsageError(f"{codec.name} cannot encode --pix-fmt {options.pix_fmt}; use one of {', '.join(formats)}")


def _encoder(av: Any, name: str) -> Any:
    try:
        codec = av.Codec(name, "w")
    except Exception:  # UnknownCodecError, or a decoder-only name
        raise UsageError(f"this PyAV build has no '{name}' video encoder; use e.g. libx264, mpeg4 or auto") from None
    if codec.type != "video":
        raise UsageError(f"'{name}' is a {codec.type} codec; --codec takes a video encoder such as libx264")
    return codec


# -- reading -----------------------------------------------------------------------------------
class _Damage(Exception):
    """Raised while reading: the input is corrupt or ends early (the message says how)."""


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc).split("; last error log:")[0]
    return text.rstrip(".") if text else type(exc).__name__


#: what FFmpeg logs when a decoder refuses a frame above the codec's ``max_pixels``
_OVERSIZE = re.compile(r"Picture size (\d+)x(\d+) exceeds specified max pixel count")


@contextlib.contextmanager
def _errors_logged(av: Any) -> Iterator[None]:
    """Let FFmpeg's error lines reach the exceptions PyAV raises (``exc.log``), printing nothing."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False):
            yield
    finally:
        av.logging.set_level(level)


def _bound(video: Any, max_pixels: int) -> tuple[int, int]:
    """Check the stream's declared frame size and cap its decoder at ``max_pixels``, before any frame is decoded.

    The decoder's own ``max_pixels`` makes FFmpeg refuse a frame above the limit before allocating it,
    whatever the stream declared. Returns the declared (w, h), (0, 0) where the container does not say.
    """
    w, h = int(video.codec_context.width or 0), int(video.codec_context.height or 0)
    if w and h:
        budget.check_pixels(w, h, max_pixels, "the video's frame size", error=BadVideo)
    video.codec_context.options = {**video.codec_context.options, "max_pixels": str(max_pixels)}
    return w, h


def _check_frame(frame: Any, declared: tuple[int, int], index: int, max_pixels: int) -> None:
    """Refuse a decoded frame above ``max_pixels`` or of another size than declared (before converting it)."""
    w, h = frame.width, frame.height
    budget.check_pixels(w, h, max_pixels, f"frame {index}", error=BadVideo)
    if declared != (0, 0) and (w, h) != declared:
        raise BadVideo(
            f"frame {index} is {w}x{h}, not the {declared[0]}x{declared[1]} the video declares; "
            "a video whose frame size changes is not supported"
        )


def _oversize(exc: BaseException, max_pixels: int) -> BadVideo | None:
    """The refusal for a frame FFmpeg's decoder would not allocate (above ``max_pixels``), else None."""
    log = getattr(exc, "log", None)
    m = _OVERSIZE.search(str(log[2] if isinstance(log, tuple) and len(log) > 2 else exc))
    if not m:
        return None
    w, h = int(m[1]), int(m[2])
    return BadVideo(
        f"a frame is {w}x{h} ({budget.fmt_mp(w * h)}), above the {max_pixels / 1e6:g} MP limit; "
        "raise --max-pixels if it is genuine"
    )


def _expected_frames(stream: Any) -> int | None:
    """The frame count the container announces: its index, else its duration times the rate."""
    if stream.frames:
        return int(stream.frames)
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif "DURATION" in stream.metadata:  # Matroska writes the stream's duration as a tag
        m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", stream.metadata["DURATION"])
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    rate = stream.average_rate or stream.guessed_rate
    return round(seconds * rate) if seconds and rate else None


def _read(av: Any, container: Any, video: Any, others: list[Any], max_pixels: int) -> Iterator[Any]:
    """Video frames and the other streams' packets in file order; damage raises :class:`_Damage`.

    A frame above ``max_pixels`` (refused by the decoder, see :func:`_bound`) raises :class:`BadVideo`.
    """
    packets = container.demux(video, *others)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            raise _Damage(_reason(exc)) from None
        if packet.stream.index != video.index:
            yield packet
            continue
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            raise _oversize(exc, max_pixels) or _Damage(_reason(exc)) from None
        yield from frames


def iter_frames(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[np.ndarray]:
    """The video's frames as stored (not rotated), RGB uint8 (H, W, 3); damage or a frame above
    ``max_pixels`` raises :class:`BadVideo`."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise BadVideo(f"cannot open as a video: {_reason(exc)}") from None
    with container, _errors_logged(av):
        if not container.streams.video:
            raise BadVideo("has no video stream")
        vin = container.streams.video[0]
        declared = _bound(vin, max_pixels)
        try:
            for i, frame in enumerate(_read(av, container, vin, [], max_pixels)):
                _check_frame(frame, declared, i + 1, max_pixels)
                yield _to_rgb(frame)
        except _Damage as exc:
            raise BadVideo(f"video is damaged: {exc}") from None


def _to_rgb(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", src_color_range=frame.color_range or None)


# -- writing -----------------------------------------------------------------------------------
@dataclass
class _Timing:
    pts: int | None
    duration: int
    time_base: Fraction


class _Writer:
    """The output file; its streams are created when the first translated frame gives the video's size.

    Whether a muxer takes a codec is only known for sure for some containers (FFmpeg's
    ``avformat_query_codec`` answers "unknown" for MPEG-TS, for instance). The first attempt
    copies every audio/subtitle stream and uses libx264 for ``--codec auto``; if the container
    refuses its header, the second attempt re-encodes (audio), drops (subtitles) and uses the
    container's default encoder for what the container did not confirm it takes.
    """

    def __init__(self, av: Any, path: Path, video: Any, others: list[Any], options: EncodeOptions, note: Callable):
        self.av, self.path, self.vin, self.others, self.options, self.note = av, path, video, others, options, note
        self.out: Any = None
        self.stream: Any = None
        self.rotation = 0
        self.pad: tuple[int, int] = (0, 0)
        self.pending: list[Any] = []  # other streams' packets read before the output exists
        self.routes: dict[int, tuple[str, Any]] = {}  # input stream index -> ("copy"|"encode", output stream)
        self.last_pts: int | None = None

    def close(self) -> None:
        if self.out is not None:
            out, self.out = self.out, None
            out.close()

    def _open(self, first: np.ndarray) -> None:
        suffix = self.path.suffix
        for optimistic in (True, False):
            self.out = self.av.open(str(self.path), "w")
            supported = self.out.supported_codecs
            notes: list[str] = []
            codec = self._video_codec(supported, optimistic)
            try:
                self._add_video(codec, first, notes)
                self._add_others(supported, optimistic, notes)
                self.out.start_encoding()
                break
            except (self.av.error.FFmpegError, ValueError) as exc:
                with contextlib.suppress(Exception):
                    self.close()
                unsure = codec not in supported or any(self._name(s) not in supported for s in self.others)
                if not (optimistic and unsure):
                    raise BadVideo(
                        f"cannot write {suffix} files with the {codec} encoder and these streams: "
                        f"{_reason(exc)}; choose another --codec or output extension"
                    ) from None
        for text in notes:
            self.note(text)
        for packet in self.pending:
            self.packet(packet)
        self.pending.clear()

    @staticmethod
    def _name(stream: Any) -> str:
        return stream.codec_context.name if stream.codec_context else "unknown"

    def _video_codec(self, supported: set[str], optimistic: bool) -> str:
        if self.options.codec != DEFAULT_CODEC:
            return str(_encoder(self.av, self.options.codec).name)
        if "libx264" in self.av.codecs_available and ("h264" in supported or optimistic):
            return "libx264"
        return str(self.av.Codec(self.out.default_video_codec, "w").name)

    def _add_video(self, codec: str, first: np.ndarray, notes: list[str]) -> None:
        av, vin, opts = self.av, self.vin, self.options
        h, w = first.shape[:2]
        fmt = av.VideoFormat(opts.pix_fmt)
        probe = 1 << 12  # chroma planes are this many times narrower/shorter: sides must be multiples
        pw, ph = -w % (probe // fmt.chroma_width(probe)), -h % (probe // fmt.chroma_height(probe))
        if pw or ph:
            notes.append(
                f"frame size {w}x{h} cannot be encoded as {opts.pix_fmt}; padded to {w + pw}x{h + ph} "
                f"by repeating the last column/row (--pix-fmt yuv444p keeps the size)"
            )
        self.pad = (pw, ph)
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        stream = self.out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w + pw, h + ph, opts.pix_fmt
        # the input's own timebase keeps its timestamps exactly, except in containers of one tick per
        # frame (AVI, MPEG-PS) and for encoders that cap the timebase (MPEG-4 part 2: 65535)
        tb = vin.time_base or 1 / rate
        fixed_rate = not self.out.format.flags & VARIABLE_FPS
        if fixed_rate or (codec not in CRF_ENCODERS and tb.denominator > 65535):
            tb = 1 / rate
        stream.codec_context.time_base = stream.time_base = tb
        for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
            if getattr(vin.codec_context, attr, 0):  # keep the input's colour tags (0: unspecified)
                setattr(stream.codec_context, attr, getattr(vin.codec_context, attr))
        if opts.bitrate:
            stream.codec_context.bit_rate = opts.bitrate
        elif codec in CRF_ENCODERS:
            stream.codec_context.options = {"crf": str(opts.crf), **({"b": "0"} if "vpx" in codec else {})}
        else:  # no CRF: a constant quantiser of about the same quality (ffmpeg's -q:v)
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = max(1, min(31, round(opts.crf / 6))) * 118  # FF_QP2LAMBDA
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self.stream = stream

    def _add_others(self, supported: set[str], optimistic: bool, notes: list[str]) -> None:
        self.routes = {}
        suffix = self.path.suffix
        for src in self.others:
            name = self._name(src)
            if name in supported or optimistic:
                self.routes[src.index] = ("copy", self.out.add_stream_from_template(src))
            elif src.type == "audio":
                codec = "aac" if "aac" in supported else self.out.default_audio_codec
                rate = 48000 if "opus" in codec else src.codec_context.sample_rate
                dst = self.out.add_stream(codec, rate=rate, layout=src.codec_context.layout.name)
                self.routes[src.index] = ("encode", dst)
                notes.append(f"audio stream #{src.index} ({name}) cannot go into {suffix} files; re-encoded to {codec}")
            else:
                notes.append(f"{src.type} stream #{src.index} ({name}) cannot go into {suffix} files; dropped")

    def packet(self, packet: Any) -> None:
        if packet.size == 0 and packet.dts is None:
            return  # the demuxer's end-of-stream marker
        if self.stream is None:
            self.pending.append(packet)
            return
        route = self.routes.get(packet.stream.index)
        if route is None:
            return  # a dropped stream
        how, dst = route
        if how == "copy":
            packet.stream = dst
            self.out.mux(packet)
            return
        for frame in packet.decode():
            self.out.mux(dst.encode(frame))

    def frames(self, outputs: list[np.ndarray], timings: list[_Timing]) -> None:
        turn = -self.rotation // 90  # back to the input's stored orientation
        if self.stream is None:
            self._open(np.rot90(outputs[0], turn))
        av, stream, (pw, ph) = self.av, self.stream, self.pad
        cc = stream.codec_context
        for arr, t in zip(outputs, timings):
            arr = np.rot90(arr, turn)
            if pw or ph:
                arr = np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            frame = frame.reformat(
                format=stream.pix_fmt, dst_colorspace=cc.colorspace or None, dst_color_range=cc.color_range or None
            )
            frame.pts, frame.time_base = self._pts(t), cc.time_base
            if t.duration:
                frame.duration = round(t.duration * t.time_base / cc.time_base)
            self.out.mux(stream.encode(frame))

    def _pts(self, t: _Timing) -> int:
        """The input's timestamp in the encoder's timebase, made strictly increasing (encoders require it)."""
        tb = self.stream.codec_context.time_base
        pts = round(t.pts * t.time_base / tb) if t.pts is not None else None
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            pts = 0 if self.last_pts is None else self.last_pts + 1
        self.last_pts = pts
        return pts

    def finish(self) -> None:
        self.out.mux(self.stream.encode(None))
        for how, dst in self.routes.values():
            if how == "encode":
                self.out.mux(dst.encode(None))
        self.close()


# -- the whole job -----------------------------------------------------------------------------
def transcode(
    src: Path,
    dest: Path,
    fn: FrameFn,
    *,
    batch_size: int = 1,
    options: EncodeOptions = EncodeOptions(),
    keep_partial: bool = False,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> VideoResult:
    """Write ``fn`` applied to every frame of ``src`` to ``dest`` (atomically); see the module docstring.

    Raises :class:`BadVideo` with the reason for an input that cannot be read, is damaged (unless
    ``keep_partial`` and frames were decoded before the damage), has frames above ``max_pixels``
    (the declared size is checked before decoding, and the decoder refuses larger frames before
    allocating them) or cannot be written as asked.
    """
    av = _av()
    try:
        container = av.open(str(src), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise BadVideo(f"cannot open as a video: {_reason(exc)} (not a video, or truncated before its index)") from None
    result = VideoResult()
    with container, _errors_logged(av):
        if not container.streams.video:
            raise BadVideo("has no video stream")
        vin = container.streams.video[0]
        declared = _bound(vin, max_pixels)
        _check_batch(declared, batch_size)
        vin.thread_type = "AUTO"
        others = [s for s in container.streams if s.type in ("audio", "subtitle")]
        dropped = [s for s in container.streams if s.type not in ("audio", "subtitle", "video")]
        dropped += container.streams.video[1:]
        for s in dropped:
            result.notes.append(f"{s.type} stream #{s.index} is not copied")
        expected = _expected_frames(vin)
        with atomic_path(dest, suffix=dest.suffix) as tmp:
            writer = _Writer(av, tmp, vin, others, options, result.notes.append)
            try:
                frames = _Frames(vin, declared, batch_size, max_pixels)
                _pump(av, container, frames, writer, fn, expected, result, progress, src.name)
                if result.damage and not keep_partial:
                    kept = f"--keep-partial keeps the {result.frames} frames decoded before it"
                    raise BadVideo(f"{result.damage}; nothing written ({kept})")
                writer.finish()
            except av.error.FFmpegError as exc:  # the encoder or muxer failed (the input's errors are _Damage)
                with contextlib.suppress(Exception):
                    writer.close()
                raise BadVideo(f"cannot write {dest}: {_reason(exc)}") from None
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.close()
                raise
    return result


@dataclass(frozen=True)
class _Frames:
    """The input video stream and how its frames are read: declared size, batch, pixel limit."""

    stream: Any
    declared: tuple[int, int]
    batch_size: int
    max_pixels: int


#: bytes a frame pixel holds while its batch is translated: the RGB array and the model's float32 copy
BATCH_BYTES_PER_PIXEL = 3 + 3 * 4


def _check_batch(declared: tuple[int, int], batch_size: int) -> None:
    """Refuse a ``--batch-size`` whose frames would not fit the memory budget (before decoding any)."""
    w, h = declared
    budget.check_bytes(batch_size * w * h * BATCH_BYTES_PER_PIXEL, f"--batch-size {batch_size} frames of {w}x{h}",
                       error=BadVideo, advice="lower --batch-size")


def _pump(
    av: Any,
    container: Any,
    frames: _Frames,
    writer: _Writer,
    fn: FrameFn,
    expected: int | None,
    result: VideoResult,
    progress: bool,
    name: str,
) -> None:
    """Decode, batch, translate and encode; records damage in ``result`` instead of raising.

    Every frame's size is checked (:func:`_check_frame`) before it is converted to RGB.
    """
    vin = frames.stream
    batch: list[np.ndarray] = []
    timings: list[_Timing] = []
    bar = tqdm(total=expected, unit="frame", desc=name, disable=not progress, dynamic_ncols=True)

    def flush() -> None:
        if batch:
            writer.frames(fn(batch), timings)
            result.frames += len(batch)
            bar.update(len(batch))
            batch.clear()
            timings.clear()

    with contextlib.closing(bar):
        try:
            for item in _read(av, container, vin, writer.others, frames.max_pixels):
                if not isinstance(item, av.VideoFrame):
                    writer.packet(item)
                    continue
                _check_frame(item, frames.declared, result.frames + len(batch) + 1, frames.max_pixels)
                if result.frames == 0 and not batch:
                    writer.rotation = round((item.rotation or 0) / 90) % 4 * 90
                batch.append(np.ascontiguousarray(np.rot90(_to_rgb(item), writer.rotation // 90)))
                timings.append(_Timing(item.pts, int(item.duration or 0), item.time_base or vin.time_base))
                if len(batch) >= frames.batch_size:
                    flush()
        except _Damage as exc:
            result.damage = f"video is damaged after frame {result.frames + len(batch)}: {exc}"
        flush()
    if result.frames == 0:
        raise BadVideo(f"no frame could be decoded ({result.damage or 'the video stream is empty'})")
    if result.damage is None and expected and result.frames < expected - 1 - expected // 100:
        result.damage = f"video ends after {result.frames} of the {expected} frames its container announces"
