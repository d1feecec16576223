"""Test helpers: short generated video clips (moving shapes over a gradient, a sine audio track), via PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from helpers import make_image


def clip_frames(n: int, size: tuple[int, int], seed: int = 0, noise: float = 0.0) -> list[np.ndarray]:
    """``n`` RGB frames: a fixed background and a square that moves 2 px a frame (plus Gaussian noise)."""
    w, h = size
    background = np.asarray(make_image((w, h), seed), dtype=np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        f = background.copy()
        x, y = (3 + 2 * i) % max(1, w - 8), h // 3
        f[y : y + 8, x : x + 8] = (255, 40, 40)
        if noise:
            f += rng.normal(0, noise, f.shape)
        frames.append(f.clip(0, 255).astype(np.uint8))
    return frames


def make_clip(
    path: Path,
    n: int = 12,
    size: tuple[int, int] = (64, 48),
    fps: int = 24,
    *,
    audio: str | None = "aac",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    noise: float = 0.0,
) -> list[np.ndarray]:
    """Write a clip of ``n`` frames (and ``n / fps`` s of a 440 Hz sine in ``audio``); returns its frames."""
    import av

    frames = clip_frames(n, size, noise=noise)
    with av.open(str(path), "w", options=container_options or {}) as out:
        default = {"crf": "10"} if codec == "libx264" else {}
        v = out.add_stream(codec, rate=fps, options=default if options is None else options)
        v.width, v.height, v.pix_fmt = size[0], size[1], pix_fmt
        if rotation:
            v.set_display_rotation(rotation)
        a = out.add_stream(audio, rate=44100, layout="mono") if audio else None
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            samples = 44100 * n // fps
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            fmt = "s16" if audio.startswith("pcm_") else "flt"
            if fmt == "s16":
                wave = (wave * 32767).astype(np.int16)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format=fmt, layout="mono")
                chunk.sample_rate, chunk.pts = 44100, start
                out.mux(a.encode(chunk))
            out.mux(a.encode())
    return frames


def read_video(path: Path, upright: bool = True) -> tuple[list[np.ndarray], dict]:
    """Every frame (turned upright by the display matrix unless told not to) and the streams' facts."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        facts = {
            "rate": v.average_rate,
            "duration": float(v.duration * v.time_base) if v.duration else None,
            "audio": [
                (s.codec_context.name, float(s.duration * s.time_base) if s.duration else None) for s in c.streams.audio
            ],
            "rotation": 0,
            "size": (v.width, v.height),
        }
        frames = []
        for frame in c.decode(v):
            facts["rotation"] = frame.rotation
            arr = frame.to_ndarray(format="rgb24")
            frames.append(np.ascontiguousarray(np.rot90(arr, round(frame.rotation / 90))) if upright else arr)
    return frames, facts


def with_subtitles(clip: Path, dest: Path, lines: list[str]) -> None:
    """Remux ``clip`` into ``dest`` (Matroska) with a SubRip track of ``lines``, half a second each."""
    import av

    srt = dest.with_suffix(".srt")
    srt.write_text(
        "".join(
            f"{i + 1}\n00:00:0{i // 2},{i % 2 * 500:03d} --> 00:00:0{(i + 1) // 2},{(i + 1) % 2 * 500:03d}\n{t}\n\n"
            for i, t in enumerate(lines)
        )
    )
    with av.open(str(clip)) as v, av.open(str(srt)) as s, av.open(str(dest), "w") as out:
        streams = {st.index: out.add_stream_from_template(st) for st in v.streams}
        sub = out.add_stream_from_template(s.streams.subtitles[0])
        for packet in v.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
        for packet in s.demux():
            if packet.size:
                packet.stream = sub
                out.mux(packet)
