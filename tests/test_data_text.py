"""Text data: embedded KJV and Botchan, tokenizers, LM / next-sentence / inverse-cloze sets."""
import lzma
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylatent.data import text as text_module
from tinylatent.data.text import (InverseClozePairs, LanguageModelStream, NextSentencePairs,
                                  NextSpanPairs, TextFormatError, VerseDataset, encode_lines,
                                  kjv_books, load_botchan, load_kjv, pad_sequences,
                                  split_sentences)
from tinylatent.data.tokenizers import (BPETokenizer, CharTokenizer, WordTokenizer,
                                        load_tokenizer, split_words)


@pytest.fixture(scope="module")
def kjv():
    return load_kjv()


def test_kjv_structure(kjv):
    assert len(kjv) == 31102
    books = kjv_books(kjv)
    assert len(books) == 66 and books[0] == "Genesis" and books[-1] == "Revelation"
    assert len({(v.book, v.chapter) for v in kjv}) == 1189
    assert kjv[0].text == "In the beginning God created the heaven and the earth."
    assert (kjv[-1].book, kjv[-1].chapter, kjv[-1].verse) == ("Revelation", 22, 21)
    # verses are numbered 1, 2, ... within every chapter
    prev = None
    for v in kjv:
        expected = prev.verse + 1 if prev and (prev.book, prev.chapter) == (v.book, v.chapter) \
            else 1
        assert v.verse == expected, v
        prev = v
    psalms = [v for v in kjv if v.book == "Psalms"]
    assert max(v.chapter for v in psalms) == 150


def test_kjv_chapter_split_and_testament(kjv):
    train, test = text_module.kjv_chapter_split(kjv)
    assert (len(train), len(test)) == (1071, 118)              # 1,189 chapters, every 10th out
    assert sum(map(len, train)) + sum(map(len, test)) == 31102
    assert test[0][0][:2] == ("Genesis", 10) and len({(d[0].book, d[0].chapter)
                                                      for d in train + test}) == 1189
    nt = text_module.kjv_testament(kjv)
    first = next(i for i, v in enumerate(kjv) if v.book == "Matthew")
    assert not nt[:first].any() and nt[first:].all() and nt.sum() == 7957   # 27 books
    small = text_module.kjv_chapter_split(kjv, chapters=40)
    assert len(small[0]) + len(small[1]) == 40 and len(small[1]) == 4


def test_embedded_text_checksum_rejects_a_changed_byte(tmp_path, monkeypatch):
    bad = tmp_path / "kjv.tsv.xz"
    data = bytearray(text_module.EMBEDDED_TEXT["kjv"].read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setitem(text_module.EMBEDDED_TEXT, "kjv", bad)
    with pytest.raises(TextFormatError, match="kjv.tsv.xz: SHA-256"):
        load_kjv()


def test_kjv_from_a_path_and_bad_files_named(tmp_path, kjv):
    good = tmp_path / "mini.tsv"
    good.write_text("Genesis\t1\t1\tIn the beginning.\nGenesis\t1\t2\tAnd the earth.\n",
                    encoding="utf-8")
    assert [v.verse for v in load_kjv(good)] == [1, 2]
    bad = tmp_path / "bad.tsv"
    bad.write_text("Genesis\t1\t1\tok\nthis line is not a verse\n", encoding="utf-8")
    with pytest.raises(TextFormatError, match=r"bad.tsv: line 2"):
        load_kjv(bad)
    truncated = tmp_path / "cut.tsv.xz"
    truncated.write_bytes(lzma.compress(good.read_bytes())[:-20])
    with pytest.raises(TextFormatError, match="cut.tsv.xz: corrupt or truncated"):
        load_kjv(truncated)
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        load_kjv(tmp_path / "missing.tsv")


def test_botchan_body_without_gutenberg_boilerplate(tmp_path):
    body = load_botchan()
    assert body.startswith("BOTCHAN (MASTER DARLING)")
    assert "Project Gutenberg" not in body and "*** END" not in body
    assert "Because of an hereditary recklessness" in body
    assert 250_000 < len(body) < 280_000
    plain = tmp_path / "b.txt"
    plain.write_text("no markers here", encoding="utf-8")
    with pytest.raises(TextFormatError, match="b.txt: no"):
        load_botchan(plain)
    copy = tmp_path / "botchan.txt.xz"
    shutil.copy(text_module.EMBEDDED_TEXT["botchan"], copy)
    assert load_botchan(copy) == body


def test_split_sentences():
    text = 'He said, "Go." Mr. Smith left! Did J. R. Kennedy stay?\nYes.  no capital here'
    assert split_sentences(text) == ['He said, "Go."', "Mr. Smith left!",
                                     "Did J. R. Kennedy stay?", "Yes.  no capital here"
                                     .replace("  ", " ")]


@given(st.text(alphabet="abc xyz.,!", max_size=40))
def test_char_tokenizer_round_trip(s):
    tok = CharTokenizer.fit("abc xyz.,!")
    assert tok.decode(tok.encode(s)) == s


def test_char_tokenizer_unknown_and_ids():
    tok = CharTokenizer.fit("ba", specials=("<unk>", "<pad>"))
    assert tok.itos == ["<unk>", "<pad>", "a", "b"]
    assert tok.encode("abz") == [2, 3, 0]
    with pytest.raises(IndexError, match="id 9"):
        tok.decode([9])


def test_word_tokenizer_min_count_and_order():
    tok = WordTokenizer.fit(["the cat, the dog", "the cat"], min_count=2)
    assert tok.itos == ["<unk>", "the", "cat"]                   # by count, then alphabet
    assert tok.encode("the dog cat") == [1, 0, 2]
    assert tok.decode(tok.encode("the cat")) == "the cat"
    assert split_words("Thou art, O LORD.") == ["Thou", "art", ",", "O", "LORD", "."]
    with pytest.raises(ValueError, match="min_count"):
        WordTokenizer.fit("a", min_count=0)


def test_bpe_first_merges_match_sennrich_algorithm_1():
    # Sennrich et al. 2016, Alg. 1 toy corpus: low x5, lower x2, newest x6, widest x3
    corpus = " ".join(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3)
    tok = BPETokenizer.train(corpus, num_merges=3)
    # pair counts: (e,s)=9 and (s,t</w>)=9 tie -> the smaller pair first; then es+t</w> = 9,
    # then (l,o) = 7 beats (n,e) = (e,w) = (w,es) = 6
    assert tok.merges == [("e", "s"), ("es", "t</w>"), ("l", "o")]
    assert tok.tokenize("newest lowest") == ["n", "e", "w", "est</w>", "lo", "w", "est</w>"]
    full = BPETokenizer.train(corpus, num_merges=100)
    assert full.tokenize("newest") == ["newest</w>"]             # every word becomes one piece
    # "low" inside "lower" (count 2) is a learned piece; "q" was never seen -> <unk>
    assert full.tokenize("lowq") == ["low", "q</w>"]
    assert full.encode("lowq") == [full.stoi["low"], full.unk_id]


def test_bpe_on_botchan_deterministic_and_compresses():
    sample = load_botchan()[:60_000]
    a = BPETokenizer.train(sample, num_merges=300)
    b = BPETokenizer.train(sample, num_merges=300)
    assert a.merges == b.merges and len(a.merges) == 300
    held_out = load_botchan()[100_000:110_000]
    ids = a.encode(held_out)
    # 0 merges = one token per character (8,160 here); 300 merges measured 4,522 tokens
    characters = sum(len(w) for w in split_words(held_out))
    assert len(ids) < 0.6 * characters
    assert len(ids) >= len(split_words(held_out))               # never fewer than words
    words = [w for w in split_words(held_out) if set(w) <= set(a.alphabet)]
    line = " ".join(words)
    assert a.decode(a.encode(line)) == line


def test_tokenizers_save_load_json(tmp_path):
    corpus = "the quick brown fox jumps over the lazy dog " * 3
    for tok in (CharTokenizer.fit(corpus), WordTokenizer.fit(corpus, lower=True),
                BPETokenizer.train(corpus, num_merges=20, specials=("<unk>", "[MASK]"))):
        path = tmp_path / f"{tok.kind}.json"
        tok.save(path)
        back = load_tokenizer(path)
        assert type(back) is type(tok) and back.itos == tok.itos
        assert back.encode("The lazy fox!") == tok.encode("The lazy fox!")
    (tmp_path / "broken.json").write_text('{"type": "bpe", "merges": [')
    with pytest.raises(ValueError, match="broken.json"):
        load_tokenizer(tmp_path / "broken.json")
    (tmp_path / "odd.json").write_text('{"type": "sentencepiece"}')
    with pytest.raises(ValueError, match="odd.json has unknown type"):
        load_tokenizer(tmp_path / "odd.json")


def test_language_model_stream_batchify_and_get_batch():
    ids = np.arange(103)
    stream = LanguageModelStream(ids, batch_size=4, bptt=7)
    T = 103 // 4
    assert stream.data.shape == (T, 4)
    for b in range(4):                          # column b is a contiguous piece of the stream
        np.testing.assert_array_equal(stream.data[:, b], ids[b * T:(b + 1) * T])
    data, target = stream.get_batch(0)
    assert data.shape == target.shape == (7, 4)
    np.testing.assert_array_equal(target.array, data.array + 1)
    batches = list(stream)
    assert len(batches) == len(stream) == -(-(T - 1) // 7)
    assert batches[-1][0].shape[0] == (T - 1) - 7 * (len(batches) - 1)   # a shorter last one
    assert sum(b[0].shape[0] for b in batches) == T - 1
    with pytest.raises(ValueError, match="too few"):
        LanguageModelStream(np.arange(5), batch_size=4)


def test_kjv_word_stream_and_verse_dataset(kjv):
    genesis = [v for v in kjv if v.book == "Genesis"]
    tok = WordTokenizer.fit((v.text for v in genesis), min_count=2,
                            specials=("<unk>", "<eos>", "<pad>"))
    ids = encode_lines(tok, [v.text for v in genesis[:3]])
    assert (ids == tok.stoi["<eos>"]).sum() == 3
    assert tok.decode(ids[:4]) == "In the beginning God"
    ds = VerseDataset(kjv[:50] + kjv[-50:], tok, max_len=12)
    x, length, book, chapter = ds[0]
    assert x.shape == (12,) and int(length) == 11 and int(book) == 0 and int(chapter) == 1
    assert int(ds[99][2]) == 1 and ds.books == ["Genesis", "Revelation"]
    assert (ds.tensors[0].array[0, 11:] == tok.stoi["<pad>"]).all()
    padded, lengths = pad_sequences([[1, 2, 3], [4]], 2, pad_id=9)
    np.testing.assert_array_equal(padded, [[1, 2], [4, 9]])
    np.testing.assert_array_equal(lengths, [2, 1])


def _chapters(kjv, n):
    chapters = {}
    for v in kjv:
        chapters.setdefault((v.book, v.chapter), []).append(v.text)
    return list(chapters.values())[:n]


def test_next_sentence_pairs(kjv):
    docs = _chapters(kjv, 60)
    pairs = NextSentencePairs(docs, generator=np.random.default_rng(0))
    again = NextSentencePairs(docs, generator=np.random.default_rng(0))
    assert pairs.pairs == again.pairs
    n = sum(len(d) - 1 for d in docs)
    assert len(pairs) == n
    labels = np.array([p[2] for p in pairs])
    assert abs(labels.mean() - 0.5) < 4 * np.sqrt(0.25 / n)       # 50/50 within 4 sigma
    doc_of = {s: i for i, d in enumerate(docs) for s in d}
    successor = {d[k]: d[k + 1] for d in docs for k in range(len(d) - 1)}
    for first, second, is_next in pairs:
        if is_next:
            assert successor[first] == second
        else:
            assert doc_of[first] != doc_of[second]
    ds = pairs.encode(WordTokenizer.fit([s for d in docs for s in d]), max_len=16)
    assert [t.shape for t in ds[0]] == [(16,), (), (16,), (), ()]


def test_next_span_pairs_by_hand():
    tok = WordTokenizer.fit(["a b c d e f g h i"])
    docs = [["a b", "c", "d e f"], ["g", "h i"]]
    # doc 0: lengths 2, 1, 3 and a budget of 3: chunk "a b" + "c" ("d e f" would overflow),
    # then "d e f" is a lone last sentence and starts no pair; doc 1: one chunk "g" + "h i"
    assert NextSpanPairs(docs, tok, 3, p_next=1.0).pairs == [("a b", "c", 1), ("g", "h i", 1)]
    # a chunk holds at least two sentences even when they overflow (encode_pair truncates)
    assert NextSpanPairs(docs, tok, 2, p_next=1.0).pairs == [("a b", "c", 1), ("g", "h i", 1)]
    assert NextSpanPairs([["a b", "c", "d"], ["e f g", "h i"]], tok, 5, p_next=1.0,
                         joiner=" | ", generator=0).spans[1] == ((1, 0, 1), (1, 1, 2))
    # NotNext: B from the other document, from a random start
    far = NextSpanPairs([["a", "b", "c"], ["g", "h i"]], tok, 5, p_next=0.0, generator=1)
    for (da, ia, ea), (db, ib, eb) in far.spans:
        assert db != da and ea > ia and eb > ib
    with pytest.raises(ValueError, match="NextSpanPairs"):
        NextSpanPairs([["a b", "c"]], tok, 8)
    with pytest.raises(ValueError, match="NextSpanPairs"):
        NextSpanPairs(docs, tok, 8, p_next=1.5)


@pytest.mark.parametrize("budget", [20, 61, 125])
def test_next_span_pairs_construction(kjv, budget):
    """BERT's spans (Sec. 3.1, A.2): chunks tile each document, A + B within the budget,
    IsNext B = the sentences right after A, NotNext B from another document and maximal,
    IsNext at the rate p_next; exact checks on every pair of 150 chapters."""
    docs = _chapters(kjv, 150)
    tok = BPETokenizer.train([s for d in docs for s in d], num_merges=300, lower=True)
    pairs = NextSpanPairs(docs, tok, budget, generator=np.random.default_rng(0))
    assert pairs.pairs == NextSpanPairs(docs, tok, budget, generator=0).pairs
    lengths = [[len(tok.encode(s)) for s in d] for d in docs]

    def fill(d, start, room):          # the test's own greedy: most sentences within room
        end = start + 1
        while end < len(docs[d]) and sum(lengths[d][start:end + 1]) <= room:
            end += 1
        return end
    expected_start = {}                 # A of a document's first pair starts at 0, ...
    for (first, second, is_next), ((da, ia, ea), (db, ib, eb)) in zip(pairs, pairs.spans):
        assert first == " ".join(docs[da][ia:ea]) and second == " ".join(docs[db][ib:eb])
        # a tokenizer that encodes word by word: the joined span has the sum of the counts
        assert len(tok.encode(first)) == sum(lengths[da][ia:ea])
        assert ia == expected_start.get(da, 0)
        chunk_end = max(ia + 2, fill(da, ia, budget))
        assert ia < ea < chunk_end <= len(docs[da])
        expected_start[da] = chunk_end  # ... and the next starts where this chunk ends
        if is_next:                     # the true continuation, up to the chunk's end
            assert (db, ib, eb) == (da, ea, chunk_end)
        else:
            assert db != da and eb == fill(db, ib, budget - sum(lengths[da][ia:ea]))
        if chunk_end - ia > 2 and (is_next or eb - ib > 1):
            # over the budget only where two sentences of a chunk, or a NotNext B of one
            # sentence longer than A leaves, are
            assert sum(lengths[da][ia:ea]) + sum(lengths[db][ib:eb]) <= budget
    for d, doc in enumerate(docs):      # at most a lone last sentence is left out
        assert expected_start.get(d, 0) >= len(doc) - 1
    labels = np.array([p[2] for p in pairs])
    assert abs(labels.mean() - 0.5) < 4 * np.sqrt(0.25 / len(labels))
    assert len(labels) > 150 * (2 if budget > 60 else 5)


def test_inverse_cloze_pairs(kjv):
    docs = _chapters(kjv, 40)
    ict = InverseClozePairs(docs, context_size=2, p_remove=0.9, generator=1)
    assert ict.items == InverseClozePairs(docs, 2, 0.9, generator=1).items
    assert len(ict) == sum(len(d) for d in docs)
    kept = np.array([k for _, _, k in ict])
    assert abs(kept.mean() - 0.1) < 4 * np.sqrt(0.09 / len(kept))
    for sentence, context, k in ict:
        assert (sentence in context) == bool(k)
    everything = InverseClozePairs([["a b.", "c d.", "e f."]], context_size=1, p_remove=0.0)
    assert everything.items[1] == ("c d.", "a b. c d. e f.", 1)
    removed = InverseClozePairs([["a b.", "c d.", "e f."]], context_size=1, p_remove=1.0)
    assert removed.items[0] == ("a b.", "c d.", 0)
