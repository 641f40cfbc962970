"""The cipher language pair (tl.data.bilingual): exact dictionary, exact inverse, disjoint splits."""
import pytest
from hypothesis import given, settings, strategies as st

import tinylatent as tl
from tinylatent.data.bilingual import Cipher, _reverse_blocks, cipher_pair, load_parallel_text

WORDS = ["in", "the", "beginning", "god", "created", "heaven", "and", "earth", ".", ","]


def test_cipher_is_a_bijection_onto_new_words():
    c = Cipher(WORDS + ["the", "and"], seed=3)          # duplicates collapse
    assert len(c) == len(WORDS)
    assert len(set(c.dictionary.values())) == len(WORDS)
    assert not set(c.dictionary.values()) & set(WORDS)
    assert all(c.inverse[c.dictionary[w]] == w for w in WORDS)
    assert Cipher(WORDS, seed=3).dictionary == c.dictionary
    assert Cipher(WORDS, seed=4).dictionary != c.dictionary


def test_block_reversal_by_hand():
    assert _reverse_blocks(list("abcde"), 2) == list("badce")
    assert _reverse_blocks(list("abcdefg"), 3) == list("cbafedg")
    assert _reverse_blocks(list("abc"), 1) == list("abc")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=12), st.integers(1, 5))
def test_decipher_inverts_encipher(tokens, block):
    c = Cipher(WORDS, seed=0, block=block)
    b = c.encipher(tokens)
    assert c.decipher(b) == tokens
    # B's words are A's words substituted, in A's order after block reversal
    assert b == [c.dictionary[t] for t in _reverse_blocks(tokens, block)]


def test_errors_name_the_problem():
    c = Cipher(WORDS)
    with pytest.raises(KeyError, match="not in language A"):
        c.encipher(["the", "exodus"])
    with pytest.raises(KeyError, match="not in language B"):
        c.decipher(["the"])
    with pytest.raises(ValueError, match="block"):
        Cipher(WORDS, block=0)
    with pytest.raises(ValueError, match="empty"):
        Cipher([])


def _verses():
    V = tl.data.text.Verse
    return [V(book, ch, n, f"{book} chapter {ch} verse {n} , and the word .")
            for book in ("Genesis", "Exodus") for ch in range(1, 11) for n in range(1, 4)]


def test_cipher_pair_splits_by_chapter_and_translates_exactly():
    verses = _verses()
    pair = cipher_pair(verses, seed=1, held_out=0.1)
    chapter = {tuple(tl.data.tokenizers.split_words(v.text, lower=True)): (v.book, v.chapter)
               for v in verses}
    a = {chapter[tuple(s)] for s in pair.a_train}
    b = {chapter[tuple(pair.cipher.decipher(s))] for s in pair.b_train}
    valid = {chapter[tuple(s)] for s, _ in pair.valid}
    test = {chapter[tuple(s)] for s, _ in pair.test}
    assert len(valid) == len(test) == 2 and len(a) == len(b) == 8
    parts = [a, b, valid, test]
    assert all(not (p & q) for i, p in enumerate(parts) for q in parts[i + 1:])
    assert sum(map(len, parts)) == 20
    for s, t in pair.valid + pair.test:
        assert t == pair.cipher.encipher(s)
    with pytest.raises(ValueError, match="held_out"):
        cipher_pair(verses, held_out=0.5)


def test_load_parallel_text(tmp_path):
    src, tgt = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("In the beginning.\nGod said\n", encoding="utf-8")
    tgt.write_text("Au commencement.\nDieu dit\n", encoding="utf-8")
    assert load_parallel_text(src, tgt, lower=True) == [
        (["in", "the", "beginning", "."], ["au", "commencement", "."]),
        (["god", "said"], ["dieu", "dit"])]
    tgt.write_text("Au commencement.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="2 lines.*has 1"):
        load_parallel_text(src, tgt)
    tgt.write_text("Au commencement.\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 of .*b.txt is empty"):
        load_parallel_text(src, tgt)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_parallel_text(src, tmp_path / "missing.txt")
