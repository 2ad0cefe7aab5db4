#!/usr/bin/env python3
"""Opens CUE's HTML findings report in headless Chromium and checks what a reader gets.

Usage: check_report.py REPORT.html FINDINGS.json CHROMIUM OUT_DIR

- every <img> is a PNG data URI that Pillow decodes;
- Chromium prints the page to PDF on A4 (595 x 842 pt), and the PDF embeds every image at
  its own pixel size (a broken image would be Chromium's 14 x 16 icon instead);
- Chromium's DOM has a findings table with one row per finding of FINDINGS.json (CUE's JSON
  export of the same list), whose volumes and maxima match it;
- the page says "not for diagnosis", gives the date, and the backbone and prompt checksums of
  FINDINGS.json.
"""

import base64
import io
import json
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image
from pypdf import PdfReader


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.rows, self.text = [], [], []
        self._in_findings, self._in_body, self._row = False, False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table" and attrs.get("id") == "findings":
            self._in_findings = True
        elif tag == "tbody" and self._in_findings:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_findings = False

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def chromium(binary, *args):
    out = subprocess.run([binary, "--no-sandbox", "--disable-gpu", *args], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def main(report, findings_json, binary, out_dir):
    report, out_dir = Path(report).resolve(), Path(out_dir)
    findings = json.load(open(findings_json))
    page = Page()
    page.feed(chromium(binary, "--dump-dom", report.as_uri()).decode())
    assert page.images, "no key slices in the report"
    sizes = []
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), f"image is not an inline PNG: {src[:40]}"
        image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
        image.load()
        sizes.append(image.size)
    listed = findings["findings"]
    assert len(page.rows) == len(listed), f"{len(page.rows)} table rows, {len(listed)} findings"
    for row, finding in zip(page.rows, listed):
        assert int(row[0]) == finding["label"] and int(row[1]) == finding["voxels"], f"row {row} vs {finding}"
        assert abs(float(row[2]) - finding["volume_ml"]) < 1e-3 and abs(float(row[3]) - finding["max_score"]) < 1e-4, f"row {row} vs {finding}"
    text = " ".join(page.text)
    assert "not for diagnosis" in text, "no research-use statement"
    for key in ("backbone_sha256", "prompt_sha256"):
        assert findings["model"][key] and findings["model"][key] in text, f"{key} missing"
    pdf = out_dir / "report.pdf"
    chromium(binary, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri())
    reader = PdfReader(pdf)
    for number, p in enumerate(reader.pages):
        width, height = float(p.mediabox.width), float(p.mediabox.height)
        assert abs(width - 595.28) < 2 and abs(height - 841.89) < 2, f"page {number + 1} is {width} x {height} pt, not A4"
    embedded = Counter(im.image.size for p in reader.pages for im in p.images)
    wanted = Counter(sizes)
    missing = wanted - embedded
    assert not missing, f"images not in the printed PDF at their size (broken?): {dict(missing)}; PDF has {dict(embedded)}"
    print(f"{report.name}: {len(sizes)} images decode and print, {len(page.rows)} rows, {len(reader.pages)} A4 page(s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
