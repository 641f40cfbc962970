"""Audio: mu-law companding, WAV files, the embedded speech clip, WaveNet training windows."""
import math

import numpy as np
import pytest
from scipy.io import wavfile

from tinylatent.data import audio
from tinylatent.data.audio import (AudioFormatError, AudioWindows, load_speech, load_wav,
                                   load_wav_folder, mu_law_decode, mu_law_encode)


def test_mu_law_against_the_formula():
    mu = 255
    for x in (0.0, 1.0, -1.0, 0.5, -0.25, 0.01, 1e-4):
        f = math.copysign(math.log(1 + mu * abs(x)) / math.log(1 + mu), x)
        assert mu_law_encode(x) == math.floor((f + 1) / 2 * mu + 0.5), x
    assert mu_law_encode(0.0) == 128 and mu_law_encode(1.0) == 255 and mu_law_encode(-1.0) == 0
    assert mu_law_encode(0.5) == 239                  # by hand: ln(128.5)/ln(256) = 0.8757
    assert mu_law_encode(7.0) == 255                  # clipped
    q = np.arange(256)
    y = 2 * q / mu - 1
    np.testing.assert_allclose(mu_law_decode(q), np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu,
                               rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 255\]"):
        mu_law_decode([256])


def test_mu_law_round_trip_error_bound():
    mu = 255
    x = np.linspace(-1, 1, 200_001)
    q = mu_law_encode(x)
    assert (np.diff(q) >= 0).all() and q.min() == 0 and q.max() == 255       # monotone, onto
    err = np.abs(mu_law_decode(q) - x)
    bound = (1 + mu * np.abs(x)) * (1 + mu) ** (1 / mu) * math.log(1 + mu) / mu ** 2
    assert (err <= bound + 1e-6).all()
    # fine steps near silence, coarse ones near full scale (the point of companding)
    assert err[np.abs(x) < 0.01].max() < 4e-4 and err[np.abs(x) > 0.9].max() > 0.01
    np.testing.assert_array_equal(mu_law_encode(mu_law_decode(np.arange(256))), np.arange(256))
    # 16 mu-law levels for Q = 16
    assert mu_law_encode(np.array([-1.0, 1.0]), 16).tolist() == [0, 15]


def test_load_wav_formats(tmp_path):
    t = np.arange(800) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    wavfile.write(tmp_path / "a16.wav", 8000, (tone * 32767).astype(np.int16))
    wavfile.write(tmp_path / "b8.wav", 8000, np.rint(tone * 128 + 128).astype(np.uint8))
    wavfile.write(tmp_path / "cf.wav", 8000, np.stack([tone, tone], 1).astype(np.float32))
    for name, tol in (("a16.wav", 1e-4), ("b8.wav", 1e-2), ("cf.wav", 1e-7)):
        x, rate = load_wav(tmp_path / name)
        assert rate == 8000 and x.dtype == np.float32 and x.shape == (800,)
        np.testing.assert_allclose(x, tone, atol=tol)
    up, rate = load_wav(tmp_path / "a16.wav", sample_rate=16000)
    assert rate == 16000 and up.shape == (1600,)
    np.testing.assert_allclose(up[200:1400:2], tone[100:700], atol=0.01)   # same tone
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioFormatError, match="broken.wav: not a readable WAV"):
        load_wav(tmp_path / "broken.wav")


def test_load_wav_folder(tmp_path):
    wavfile.write(tmp_path / "2.wav", 8000, np.zeros(100, np.int16))
    wavfile.write(tmp_path / "1.wav", 8000, np.ones(50, np.int16) * 1000)
    (tmp_path / "notes.txt").write_text("not audio")
    clips = load_wav_folder(tmp_path)
    assert [name for name, _ in clips] == ["1.wav", "2.wav"]
    assert clips[0][1].shape == (50,) and clips[1][1].shape == (100,)
    wavfile.write(tmp_path / "3.wav", 16000, np.zeros(100, np.int16))
    with pytest.raises(AudioFormatError, match="3.wav: sample rate 16000 Hz differs"):
        load_wav_folder(tmp_path)
    assert load_wav_folder(tmp_path, sample_rate=8000)[2][1].shape == (50,)
    with pytest.raises(FileNotFoundError, match="no .wav files"):
        load_wav_folder(_empty_folder(tmp_path))


def _empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_embedded_speech_is_real_speech():
    speech = load_speech()
    seconds = len(speech.mulaw) / speech.sample_rate
    assert speech.sample_rate == 8000 and 60 < seconds <= 150
    assert speech.refs[0] == "Genesis 1:1" and speech.texts[0].startswith("In the beginning")
    assert speech.starts[0] == 0 and (np.diff(speech.starts) > 0).all()
    assert len(speech.refs) == len(speech.texts) == len(speech.starts)
    assert speech.mulaw.min() >= 0 and speech.mulaw.max() <= 255
    x = mu_law_decode(speech.mulaw)
    # speech: loud voiced stretches and near-silent pauses, most energy below 4 kHz
    frames = x[:len(x) // 400 * 400].reshape(-1, 400)              # 50 ms frames
    rms = np.sqrt((frames ** 2).mean(axis=1))
    assert np.quantile(rms, 0.9) > 0.05 and np.quantile(rms, 0.1) < 0.01
    assert audio.EMBEDDED_SPEECH.stat().st_size <= 1_000_000


def test_speech_checksum_and_corrupt_file_named(tmp_path, monkeypatch):
    bad = tmp_path / "speech_kjv_8k.npz"
    data = bytearray(audio.EMBEDDED_SPEECH.read_bytes())
    data[5000] ^= 0x01
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(audio, "EMBEDDED_SPEECH", bad)
    with pytest.raises(AudioFormatError, match="speech_kjv_8k.npz: SHA-256"):
        load_speech()
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(AudioFormatError, match="junk.npz: not a speech file"):
        load_speech(junk)


def test_audio_windows_split_and_targets():
    codes = np.arange(10_000) % 256
    train = AudioWindows(codes, window=100, split="train", test_fraction=0.2)
    test = AudioWindows(codes, window=100, split="test", test_fraction=0.2)
    x, target = train[3]
    assert x.shape == target.shape == (100,)
    np.testing.assert_array_equal(x.array, codes[300:400])
    np.testing.assert_array_equal(target.array, codes[301:401])
    assert len(train) == (8000 - 1) // 100 and len(test) == (2000 - 1) // 100
    np.testing.assert_array_equal(test[0][0].array, codes[8000:8100])    # after the train part
    overlapping = AudioWindows(codes, window=100, hop=50, test_fraction=0.2)
    assert len(overlapping) == len(range(0, 8000 - 100, 50))
    with pytest.raises(ValueError, match="fewer than window"):
        AudioWindows(codes[:50], window=100, split="test")
    speech = AudioWindows(load_speech().mulaw, window=4000)
    assert speech.tensors[0].array.max() <= 255 and len(speech) > 200
