#!/usr/bin/env python3
"""Reference token ids for CUE's CLIP tokenizer test (tests/data/clip_tokenizer_reference.json).

The reference is open_clip's SimpleTokenizer (OpenAI's original algorithm), taken from the
open_clip_torch wheel on PyPI; torch is stubbed out since only the tokenizer is used.
Needs: pip install ftfy regex.   Usage: python3 scripts/make_tokenizer_reference.py
"""
import json
import os
import subprocess
import sys
import tempfile
import types
import zipfile

SENTENCES = [
    "a photo of a normal brain MRI",
    "brain MRI with a tumour",
    "an axial T1-weighted slice showing a glioblastoma with ring enhancement",
    "FLAIR hyperintensity in the left periventricular white matter (about 12 mm)",
    "T2w, T1ce, T2-FLAIR: no acute intracranial abnormality.",
    "Patient #42's follow-up scan: lesion grew 3.5% since 2023-07-14!",
    "multiple    spaces\tand\nnewlines",
    "UPPER case and MiXeD case words",
    "punctuation... !!! ??? --- ;;; ::: \"quoted\" 'single' [brackets] {braces} <angles>",
    "numbers 1234567890 and 3.14159 and 1e-5",
    "naïve café résumé — über straße",
    "emoji 🧠 and symbols ± × ÷ µm ° ≤ ≥",
    "日本語のテキスト and 中文 and 한국어",
    "don't can't won't it's we're they've I'm you'll he'd",
    "hypointense necrotic core, hyperintense oedema, enhancing rim",
    "",
    "a",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "x-ray of the chest with consolidation in the right lower lobe",
    "retinal OCT B-scan with drusen and subretinal fluid",
]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "open_clip_torch==3.3.0"],
            check=True,
        )
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extract("open_clip/tokenizer.py", tmp)
            z.extract("open_clip/bpe_simple_vocab_16e6.txt.gz", tmp)
        sys.modules["torch"] = types.SimpleNamespace(LongTensor=object, Tensor=object)
        sys.path.insert(0, os.path.join(tmp, "open_clip"))
        import tokenizer  # noqa: E402

        t = tokenizer.SimpleTokenizer(os.path.join(tmp, "open_clip", "bpe_simple_vocab_16e6.txt.gz"))
        cases = [{"text": s, "ids": [t.sot_token_id] + t.encode(s) + [t.eot_token_id]} for s in SENTENCES]
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "tests", "data", "clip_tokenizer_reference.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"reference": "open_clip_torch 3.3.0 SimpleTokenizer", "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
