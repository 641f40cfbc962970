"""Build tinylatent/data/embedded/kjv_bow.npz: a labelled bag-of-words document set from the
King James Bible, for text retrieval with a bag-of-words autoencoder (seed 000).

Documents are the 1,189 chapters; each is labelled with the traditional section of the
canon its book belongs to (Law, History, Poetry & Wisdom, Prophets, Gospels & Acts,
Epistles & Revelation). The vocabulary is the `--vocab` most frequent words (by number of
chapters they occur in) after dropping English function words; counts are stored sparse
(CSR) so the file stays small.

The text comes from Debian's `bible-kjv-text` package, decoded with the `bible` program of
`bible-kjv` (the KJV text is public domain; see kjv_bow.md):

    apt-get install bible-kjv-text bible-kjv
    python scripts/make_kjv_bow.py                   # runs `bible Gen1:1-Rev22:21`
    python scripts/make_kjv_bow.py --text kjv.txt    # or reads that program's output
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import os
import re
import subprocess

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tinylatent", "data", "embedded",
                   "kjv_bow.npz")

# The canon's traditional sections (Protestant order, as printed in the KJV).
SECTIONS = [
    ("Law", ["Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"]),
    ("History", ["Joshua", "Judges", "Ruth", "1 Samuel", "2 Samuel", "1 Kings", "2 Kings",
                 "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther"]),
    ("Poetry & Wisdom", ["Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon"]),
    ("Prophets", ["Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel",
                  "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah",
                  "Haggai", "Zechariah", "Malachi"]),
    ("Gospels & Acts", ["Matthew", "Mark", "Luke", "John", "Acts"]),
    ("Epistles & Revelation", ["Romans", "1 Corinthians", "2 Corinthians", "Galatians",
                               "Ephesians", "Philippians", "Colossians", "1 Thessalonians",
                               "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus",
                               "Philemon", "Hebrews", "James", "1 Peter", "2 Peter",
                               "1 John", "2 John", "3 John", "Jude", "Revelation"]),
]

STOPWORDS = set("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each even every
few for from further had has have having he her here hers herself him himself his how i if
in into is it its itself just let may me might more most much must my myself no nor not now
o of off on once one only or other our ours ourselves out over own same shall she should so
some such than that the their theirs them themselves then there these they this those
through thus to too under until unto up upon us very was we were what when where which
while who whom whose why will with would ye yea yet you your yours yourself yourselves
thee thou thy thine hath hast doth dost art wilt shalt saith said say unto also thereof
therefore wherefore behold lo neither nay hither thither whither thence hence whence
""".split())

HEADER = re.compile(r"^(\S.*?) (\d+)$")  # "1 Kings 3" starts a chapter
VERSE = re.compile(r"^\s+(\d+) (.*)$")   # "  12 And it came to pass ..."
WORD = re.compile(r"[a-z]+")


def read_chapters(text: str) -> list:
    """[(book, chapter, text)] from the `bible` program's plain output."""
    chapters, book, num, lines = [], None, None, []
    for line in text.splitlines():
        m = HEADER.match(line)
        if m and not line.startswith(" "):
            if book is not None:
                chapters.append((book, num, " ".join(lines)))
            book, num, lines = m.group(1), int(m.group(2)), []
            continue
        v = VERSE.match(line)
        lines.append(v.group(2) if v else line.strip())
    if book is not None:
        chapters.append((book, num, " ".join(lines)))
    return chapters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", help="output of `bible Gen1:1-Rev22:21` (default: run it)")
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    if args.text:
        with open(args.text, encoding="latin-1") as f:
            text = f.read()
    else:
        text = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                              text=True, encoding="latin-1").stdout
    print(f"source sha256: {hashlib.sha256(text.encode('latin-1')).hexdigest()}")
    chapters = read_chapters(text)
    section_of = {b: i for i, (_, books) in enumerate(SECTIONS) for b in books}
    books = [b for _, bs in SECTIONS for b in bs]
    missing = {c[0] for c in chapters} - set(section_of)
    if missing or len(chapters) != 1189:
        raise SystemExit(f"unexpected text: {len(chapters)} chapters (want 1189), unknown "
                         f"books {sorted(missing)}")
    tokens = [[w for w in WORD.findall(c[2].lower()) if w not in STOPWORDS and len(w) > 1]
              for c in chapters]
    df = collections.Counter(w for toks in tokens for w in set(toks))
    vocab = sorted(df, key=lambda w: (-df[w], w))[:args.vocab]
    index = {w: i for i, w in enumerate(vocab)}
    indptr, indices, counts = [0], [], []
    for toks in tokens:
        row = collections.Counter(index[w] for w in toks if w in index)
        cols = sorted(row)
        indices += cols
        counts += [min(row[c], 255) for c in cols]
        indptr.append(len(indices))
    np.savez_compressed(
        args.out,
        indptr=np.asarray(indptr, dtype=np.int32),
        indices=np.asarray(indices, dtype=np.uint16),
        counts=np.asarray(counts, dtype=np.uint8),
        labels=np.asarray([section_of[c[0]] for c in chapters], dtype=np.int8),
        book=np.asarray([books.index(c[0]) for c in chapters], dtype=np.int8),
        chapter=np.asarray([c[1] for c in chapters], dtype=np.int16),
        vocab=np.asarray("\n".join(vocab)),
        book_names=np.asarray("\n".join(books)),
        label_names=np.asarray("\n".join(name for name, _ in SECTIONS)))
    print(f"wrote {args.out}: {len(chapters)} chapters, {len(vocab)} words, "
          f"{len(indices)} non-zeros, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
