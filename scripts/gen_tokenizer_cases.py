#!/usr/bin/env python3
"""Reference cases for the C++ GPT-2 tokenizer, computed with tiktoken from the LOCAL vocabulary.

No download: the tiktoken Encoding is built from data/gpt2/encoder.json + data/gpt2/vocab.bpe with
tiktoken's own loader (data_gym_to_mergeable_bpe_ranks, which also checks the two files against each
other), GPT-2's pattern string and the <|endoftext|> special token.

Writes tests/fixtures/tokenizer/cases.json:
  cases:  [{name, text | hex, mode, ids | error_offset}]   mode: allowed | disallowed | as_text
  files:  whole-file counts and FNV-1a-64 hashes (the-verdict: 5145 tokens; tinyshakespeare)
  splits: llm.c's tinyshakespeare val/train and the book's 90/10 the-verdict split
  sweep:  count + hash for a text built from (almost) every code point (formula in sweep_text())

Invalid UTF-8 (tiktoken only takes valid str): the rule documented in host/tokenizer.h is applied on
top of tiktoken — maximal valid runs encoded by tiktoken, each invalid byte as its single-byte token.

Usage: python3 scripts/gen_tokenizer_cases.py   (from the repository root; needs tiktoken)
"""
import json
import os
import random
import sys

os.environ["TIKTOKEN_CACHE_DIR"] = ""  # never cache or fetch anything
import tiktoken  # noqa: E402
from tiktoken.load import data_gym_to_mergeable_bpe_ranks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
EOT = "<|endoftext|>"


def load_encoding():
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(ROOT, "data/gpt2/vocab.bpe"),
        encoder_json_file=os.path.join(ROOT, "data/gpt2/encoder.json"),
        vocab_bpe_hash="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        encoder_json_hash="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    )
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256}, explicit_n_vocab=50257), ranks


ENC, RANKS = load_encoding()


def encode_bytes(b: bytes, mode: str):
    """Our rule for arbitrary bytes, built from tiktoken on the valid runs."""
    if mode == "disallowed":
        k = b.find(EOT.encode())
        if k >= 0:
            return {"error_offset": k}
    out = []
    segments = [b] if mode == "as_text" else b.split(EOT.encode())
    for si, seg in enumerate(segments):
        if si:
            out.append(50256)
        i = 0
        while i < len(seg):
            try:
                run = seg[i:].decode("utf-8")
                out += ENC.encode_ordinary(run)
                break
            except UnicodeDecodeError as e:
                j = i + e.start  # first byte that does not start a valid sequence
                if j > i:
                    out += ENC.encode_ordinary(seg[i:j].decode("utf-8"))
                out.append(RANKS[seg[j:j + 1]])
                i = j + 1
    return {"ids": out}


def fnv64(ids):
    h = 0xcbf29ce484222325
    for t in ids:
        for k in range(4):
            h ^= (t >> (8 * k)) & 0xFF
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def sweep_code_points():
    """Planes 0-3 and 14 in full; every 97th code point elsewhere; no surrogates."""
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        plane = cp >> 16
        if plane <= 3 or plane == 14 or cp % 97 == 0:
            yield cp


def sweep_text():
    # each code point in several contexts that expose its class (letter/number/space/other)
    return "".join(f" {chr(c)}x{chr(c)}{chr(c)}1{chr(c)}!{chr(c)} {chr(c)}\n" for c in sweep_code_points())


# ---------------------------------------------------------------------------------------------
# Hand-picked strings, by category (the list)

BOOK = [
    "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.",
    "Every effort moves you", "Hello, I am", "<|user|>", "Akwirw ier",
]
CONTRACTIONS = [
    "I'm", "you're", "they've", "he'll", "she'd", "it's", "don't", "won't", "can't", "I'M", "YOU'RE",
    "THEY'VE", "HE'LL", "SHE'D", "IT'S", "DON'T", "It'S", "I'd've", "'s", "'S", "''s", "'ll've", " 's",
    "rock'n'roll", "o'clock", "ma'am", "y'all", "Jones's", "dogs'", "'quoted'", "l'été", "'re'", "x'x",
    "we'RE here", "O'Neil's", "it’s (curly)",
]
WHITESPACE = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", "a  b", "a   b", "a \n b",
    " \n", "  \n  ", "\t\t\tx", "x\t \n", "hello   ", "   hello", "line1\nline2\n\n\nline3", "\v\f",
    "a\x0bb", "a\x0cb", " \t \t", "\n \n \n", "a\r\nb\r\n", "  leading and trailing  ", "x \n\ny",
    "def f():\n    return 1\n", "\t\tindent\n\t\tindent", " \r\n ", "end\n", "a\n\n\nb", "  x  y  ",
]
DIGITS = [
    "123", "1234567890", " 2024", "3.14159", "1,000,000", "12ab34", "0x1F", "1e-10", "٣٤٥", "Ⅻ", "½",
    "x²", "१२३", "１２３", "v1.2.3", "2024-01-15T12:30:00Z", "$19.99", "+44 20 7946 0958", "007",
    "9" * 40, "I have 3 apples and 42 oranges",
]
PUNCT = [
    "!!!", "...", "?!?!", "---", "=====", "**bold**", "#include <stdio.h>", "a.b.c", ":-)", "<<>>",
    "((()))", "\"quoted\"", "'single'", "a--b", "~~~", "@#$%^&*", "«guillemets»", "„Anführung“",
    "…", "—em dash—", "¿Qué?", "¡Hola!", ";;", "//", "\\\\", "[x]", "{}", "|", "||", "<|", "|>",
]
ACCENTS = [
    "café", "naïve", "résumé", "Ångström", "façade", "Crème brûlée", "Straße", "İstanbul", "ﬁnance",
    "Ærøskøbing", "Dvořák", "Łódź", "São Paulo", "Mañana", "Þórr", "ŒUVRE",
]
COMBINING = [
    "e\u0301", "cafe\u0301", "a\u0308\u0304", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307",
    "\u0301", " \u0301", "x\u20dd", "n\u0303o", "\u0915\u094d\u0937", "1\u0301", "!\u0301",
]
CJK = [
    "你好，世界", "日本語のテキスト", "한국어 텍스트", "中文 English mixed 混合", "\u3000", "漢字\u3000かな",
    "東京都", "カタカナ", "ｶﾀｶﾅ", "我爱自然语言处理。", "𠀀𠀁𪜀",
]
EMOJI = [
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇫🇷", "❤️", " 🎉🎉", "a😀b", "1️⃣", "👩🏾‍💻", "😀😃😄😁",
    "I ❤ NY", "🤖 robots", "✨new✨", "🫠", "🧑🏻‍🤝‍🧑🏿",
]
SPACES = [
    "a\u00a0b", "\u00a0", "a\u2009b", "\u2028", "a\u2029b", "\u202f", "x\u205fy", "\u1680", "\u0085",
    "x\u0085y", "x \u0085", " \u00a0 x", "\u180e", "\ufeff", "a\u2000\u2001\u2002b", "\u3000\u3000x",
    "100\u00a0km", "\u00a0\u00a0\u00a0", "a \u00a0", "a\u00a0 b", "\u2007\u2008",
]
ZERO_WIDTH = [
    "a\u200bb", "\u200c", "\u200d", "\u2060", "zero\u200bwidth\u200bspace", "\ufeffhello", "\u200e\u200f",
    " \u200b ", "\u200b\n",
]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "$ ls -la | grep foo && echo done",
    "<html><body><p class=\"x\">Hi</p></body></html>",
    "SELECT * FROM users WHERE id = 42;",
    "x += y**2 // 3 - z[::-1]",
    "const f = (x) => x?.y ?? 0;",
    "#!/usr/bin/env bash\nset -euo pipefail\n",
    "    \n    \n",
    "std::vector<int> v{1,2,3};",
]
URLS = [
    "https://example.com/path?query=1&x=y#frag", "user@example.com", "www.openai.com", "ftp://a.b/c",
    "http://localhost:8080/api/v1/items/42", "mailto:someone@example.org",
    "https://en.wikipedia.org/wiki/Byte_pair_encoding",
]
SCRIPTS = [
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет, мир!", "Γειά σου Κόσμε",
    "გამარჯობა", "Բարեւ", "வணக்கம்", "∀x∈ℝ: x²≥0", "€100 £50 ¥1000 ₹", "→ ← ↑ ↓", "ᚠᛇᚻ", "Ελληνικά123",
]
CONTROL = ["\x00", "a\x00b", "\x1b[31mred\x1b[0m", "\x7f", "\x01\x02\x03", "tab\x09sep", "\x1c\x1d\x1e\x1f"]
SPECIAL = [
    EOT, "a" + EOT + "b", EOT + EOT, " " + EOT + " ", "<|endoftext|", "<|endoftext", EOT + "\n\n" + EOT,
    EOT + "'s", "x" + EOT, EOT + "123", "<|endoftext|>>", "<<|endoftext|>", "text\n" + EOT + "\nmore",
]
LONG = [
    "a" * 200, "abc" * 100, " " * 300, "\n" * 100, "!" * 150, "1" * 300, "ab" * 70,
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "😀" * 50, " \t" * 80, "QmFzZTY0IGVuY29kZWQgc3RyaW5nIGZvciB0ZXN0aW5nIHRoZSB0b2tlbml6ZXI" * 6,
    "x" + " " * 100 + "y", "-" * 120 + "\n", "0123456789" * 20,
]
INVALID = [
    b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xf0\x9f\x98", b" \xff ", b"hello \xff\xfe world",
    b"\xffhello", b"caf\xe9", b"\x80\x80\x80", b"a\xf5b", b"\xef\xbb", b"\n\xff\n", b"\xf0\x9f\x98\x80\xff",
    b"don\xff't", b"  \xa0  ",
]


def random_mixes(n, seed=1234):
    rng = random.Random(seed)
    pool = [s for group in (CONTRACTIONS, WHITESPACE, DIGITS, PUNCT, ACCENTS, COMBINING, CJK, EMOJI, SPACES,
                            ZERO_WIDTH, URLS, SCRIPTS, CONTROL) for s in group]
    out = []
    for _ in range(n):
        k = rng.randint(2, 6)
        out.append("".join(rng.choice(pool) + rng.choice(["", " ", "\n", "  ", "\t"]) for _ in range(k)))
    return out


def main():
    cases = []

    def add(name, text, modes=("as_text",)):
        raw = text if isinstance(text, bytes) else text.encode("utf-8")
        for mode in modes:
            c = {"name": name, "mode": mode}
            if isinstance(text, bytes):
                c["hex"] = raw.hex()
            else:
                c["text"] = text
            c.update(encode_bytes(raw, mode))
            if isinstance(text, str) and "error_offset" not in c:  # cross-check with tiktoken's own API
                ref = ENC.encode(text, allowed_special="all" if mode == "allowed" else set(),
                                 disallowed_special=() if mode != "disallowed" else "all")
                assert ref == c["ids"], (name, mode)
            cases.append(c)

    groups = [("book", BOOK), ("contraction", CONTRACTIONS), ("whitespace", WHITESPACE), ("digits", DIGITS),
              ("punct", PUNCT), ("accent", ACCENTS), ("combining", COMBINING), ("cjk", CJK), ("emoji", EMOJI),
              ("unicode_space", SPACES), ("zero_width", ZERO_WIDTH), ("code", CODE), ("url", URLS),
              ("script", SCRIPTS), ("control", CONTROL), ("long", LONG), ("random", random_mixes(150))]
    for gname, group in groups:
        for i, s in enumerate(group):
            add(f"{gname}_{i}", s, ("allowed", "as_text") if EOT in s else ("as_text",))
    for i, s in enumerate(SPECIAL):
        add(f"special_{i}", s, ("allowed", "disallowed", "as_text"))
    add("plain_disallowed", "no special token here", ("disallowed",))
    for i, b in enumerate(INVALID):
        add(f"invalid_{i}", b, ("as_text",))
    add("invalid_special", b"\xff" + EOT.encode() + b"\xfe", ("allowed", "as_text", "disallowed"))

    files = []
    for rel in ("data/the-verdict.txt", "data/tinyshakespeare.txt"):
        text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        ids = ENC.encode(text, allowed_special="all")
        files.append({"path": rel, "mode": "allowed", "count": len(ids), "fnv64": fnv64(ids), "first": ids[:16]})
    assert files[0]["count"] == 5145

    shakes = open(os.path.join(ROOT, "data/tinyshakespeare.txt"), encoding="utf-8").read()
    # llm.c dev/data/tinyshakespeare.py: every "\n\n"-ended section is a document with a leading EOT
    ll = ENC.encode(EOT + shakes.replace("\n\n", "\n\n" + EOT), allowed_special="all")
    verdict = open(os.path.join(ROOT, "data/the-verdict.txt"), encoding="utf-8").read()
    cut = int(0.90 * len(verdict))  # the book's character split
    vtrain, vval = ENC.encode(verdict[:cut], allowed_special="all"), ENC.encode(verdict[cut:], allowed_special="all")
    splits = {
        "llmc_tinyshakespeare": {"val_count": 32768, "val_fnv64": fnv64(ll[:32768]),
                                 "train_count": len(ll) - 32768, "train_fnv64": fnv64(ll[32768:])},
        "book_the_verdict": {"split_char": cut, "train_count": len(vtrain), "train_fnv64": fnv64(vtrain),
                             "val_count": len(vval), "val_fnv64": fnv64(vval)},
    }
    sweep_ids = ENC.encode_ordinary(sweep_text())
    sweep = {"code_points": sum(1 for _ in sweep_code_points()), "count": len(sweep_ids), "fnv64": fnv64(sweep_ids)}

    out = {"generator": "scripts/gen_tokenizer_cases.py", "tiktoken": tiktoken.__version__, "pat_str": GPT2_PAT,
           "cases": cases, "files": files, "splits": splits, "sweep": sweep}
    path = os.path.join(ROOT, "tests/fixtures/tokenizer/cases.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=0, ensure_ascii=True)
        f.write("\n")
    print(f"wrote {path}: {len(cases)} cases, files {[(x['path'], x['count']) for x in files]}, "
          f"splits {splits}, sweep {sweep['count']} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
