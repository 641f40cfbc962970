"""Build the embedded public-domain texts: tinylatent/data/embedded/kjv.tsv.xz and botchan.txt.xz.

King James Bible (public domain), from Debian's `bible-kjv-text` decoded by the `bible`
program of `bible-kjv`; one verse per line, tab-separated `book  chapter  verse  text`:

    apt-get update && apt-get install -y bible-kjv bible-kjv-text      # 4.38 in Debian 12
    python scripts/make_embedded_text.py kjv                 # runs `bible Gen1:1-Rev22:21`
    python scripts/make_embedded_text.py kjv --text kjv.txt  # or reads that program's output

"Botchan" (Natsume Soseki, tr. Yasotaro Morri, Project Gutenberg eBook #8868, public domain),
the file `test/botchan.txt` of the sentencepiece source distribution, kept byte for byte
(Project Gutenberg header and licence included, as its licence asks of a verbatim copy):

    pip download --no-deps --no-binary :all: --no-build-isolation sentencepiece==0.2.3 -d /tmp/sp
    python scripts/make_embedded_text.py botchan /tmp/sp/sentencepiece-0.2.3.tar.gz

Both are written with xz (LZMA2, preset 9 | extreme). The script prints the SHA-256 of its
input and of the file it writes; tinylatent/data/text.py checks the latter when loading.
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import re
import subprocess
import tarfile

EMBEDDED = os.path.join(os.path.dirname(__file__), "..", "tinylatent", "data", "embedded")

HEADER = re.compile(r"^(\S.*?) (\d+)$")   # "1 Kings 3" starts a chapter
VERSE = re.compile(r"^\s+(\d+) (.*)$")    # "  12 And it came to pass ..." starts a verse


def parse_bible(text: str) -> list:
    """[(book, chapter, verse, text)] from the `bible` program's plain output.

    A chapter starts with an unindented "Book N" line; a verse with an indented number;
    other lines continue the current verse (the program wraps at 80 columns).
    """
    verses, book, chapter = [], None, None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = HEADER.match(line)
        if m and not line.startswith(" "):
            book, chapter = m.group(1), int(m.group(2))
            continue
        v = VERSE.match(line)
        if v:
            verses.append([book, chapter, int(v.group(1)), v.group(2).strip()])
        elif verses:
            verses[-1][3] += " " + line.strip()
        else:
            raise SystemExit(f"text before the first verse: {line!r}")
    return [tuple(v) for v in verses]


def write_xz(path: str, data: bytes) -> None:
    blob = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    with open(path, "wb") as f:
        f.write(blob)
    print(f"wrote {path}: {len(data)} bytes -> {len(blob)} bytes xz, "
          f"sha256 {hashlib.sha256(blob).hexdigest()}")


def make_kjv(text_path: str | None, out: str) -> None:
    if text_path:
        with open(text_path, "rb") as f:
            raw = f.read()
    else:
        raw = subprocess.run(["bible", "Gen1:1-Rev22:21"], check=True,
                             capture_output=True).stdout
    print(f"source sha256: {hashlib.sha256(raw).hexdigest()}")
    verses = parse_bible(raw.decode("latin-1"))
    chapters = {(b, c) for b, c, _, _ in verses}
    books = list(dict.fromkeys(b for b, _, _, _ in verses))
    # 66 books, 1,189 chapters and 31,102 verses in the Authorized Version
    if (len(books), len(chapters), len(verses)) != (66, 1189, 31102):
        raise SystemExit(f"unexpected text: {len(books)} books, {len(chapters)} chapters, "
                         f"{len(verses)} verses (want 66, 1189, 31102)")
    lines = "".join(f"{b}\t{c}\t{v}\t{t}\n" for b, c, v, t in verses)
    write_xz(os.path.join(out, "kjv.tsv.xz"), lines.encode("utf-8"))


def make_botchan(sdist: str, out: str) -> None:
    with open(sdist, "rb") as f:
        print(f"source sha256: {hashlib.sha256(f.read()).hexdigest()}")
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/test/botchan.txt"))
        data = tar.extractfile(member).read()
    print(f"{member.name}: sha256 {hashlib.sha256(data).hexdigest()}")
    write_xz(os.path.join(out, "botchan.txt.xz"), data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["kjv", "botchan"])
    ap.add_argument("source", nargs="?", help="botchan: the sentencepiece sdist (.tar.gz)")
    ap.add_argument("--text", help="kjv: output of `bible Gen1:1-Rev22:21` (default: run it)")
    ap.add_argument("--out", default=EMBEDDED)
    args = ap.parse_args()
    if args.which == "kjv":
        make_kjv(args.text, args.out)
    else:
        if not args.source:
            ap.error("botchan needs the sentencepiece sdist path")
        make_botchan(args.source, args.out)


if __name__ == "__main__":
    main()
