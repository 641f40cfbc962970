"""The word2vec text format loader (tinylatent/data/word_vectors.py) on small files written
here: round trip, `limit`, and the errors naming the file and line."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data import WordVectorFormatError, load_word_vectors, save_word_vectors


def _write(tmp_path, text, name="v.vec", raw=False):
    path = tmp_path / name
    path.write_bytes(text if raw else text.encode("utf-8"))
    return path


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "lord", "ſeraph", "naïve", ",", "x1"]
    vectors = (rng.standard_normal((6, 7)) * 10.0 ** rng.integers(-8, 8, (6, 7))) \
        .astype(np.float32)
    path = tmp_path / "out.vec"
    save_word_vectors(path, words, vectors)
    got_words, got = load_word_vectors(path)
    assert got_words == words and got.dtype == np.float32
    np.testing.assert_array_equal(got, vectors)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "6 7"
    assert list(tmp_path.iterdir()) == [path]              # no temporary file left behind


def test_reads_the_standard_format_and_limit(tmp_path):
    path = _write(tmp_path, "3 2\nthe 0.5 -1\nlord 1e-3 2.25 \n\nking 3 4\n")
    words, v = load_word_vectors(path)                     # trailing space, blank line
    assert words == ["the", "lord", "king"]
    np.testing.assert_array_equal(v, np.array([[0.5, -1], [1e-3, 2.25], [3, 4]], np.float32))
    words, v = load_word_vectors(path, limit=2)
    assert words == ["the", "lord"] and v.shape == (2, 2)


def test_models_vectors_load_back(tmp_path):
    model = tl.models.Word2Vec(in_features=5, latent_features=3)
    model.itos = ["a", "b", "c", "d", "e"]
    save_word_vectors(tmp_path / "m.vec", model.itos, model.vectors(normalized=False))
    words, v = load_word_vectors(tmp_path / "m.vec")
    assert words == model.itos
    np.testing.assert_array_equal(v, model.vectors(normalized=False))


@pytest.mark.parametrize("text, message", [
    ("2 3\nthe 1 2 3\nlord 1 2\n", r"line 3: word 'lord' has 2 numbers, the header says "
                                    r"vectors have 3"),
    ("3 2\nthe 1 2\nlord 1 2\n", r"the header says 3 words but the file has 2 word lines"),
    ("2 2\nthe 1 2\nthe 3 4\n", r"line 3: word 'the' already appeared on line 2"),
    ("2 two\nthe 1 2\n", r"line 1: expected the header 'n d'"),
    ("1 2\nthe 1 x\n", r"line 2: word 'the' has a value that is not a number"),
    ("", r"is empty"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(WordVectorFormatError, match=message) as info:
        load_word_vectors(path)
    assert str(path) in str(info.value)


def test_non_utf8_names_the_line(tmp_path):
    path = _write(tmp_path, b"2 1\nthe 1\ncaf\xe9 2\n", raw=True)     # Latin-1 bytes
    with pytest.raises(WordVectorFormatError, match=r"line 3 is not UTF-8"):
        load_word_vectors(path)


def test_missing_file_and_bad_saves(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_word_vectors: cannot read"):
        load_word_vectors(tmp_path / "absent.vec")
    with pytest.raises(ValueError, match="2 words and vectors of shape"):
        save_word_vectors(tmp_path / "a.vec", ["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="without whitespace"):
        save_word_vectors(tmp_path / "a.vec", ["a b", "c"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'a' occurs twice"):
        save_word_vectors(tmp_path / "a.vec", ["a", "a"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        save_word_vectors(tmp_path / "a.vec", ["a", "b"], np.full((2, 2), np.nan))
    assert not list(tmp_path.iterdir())
