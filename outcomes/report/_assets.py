"""The built-in renderer's look: HTML stylesheet, Typst (PDF) template and Word reference.

Kept as Python text so they ship inside the package without package-data rules.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
import zipfile
from collections.abc import Callable

HTML_CSS = """\
html { background: #fff; }
body {
  font-family: "Libertinus Serif", "Linux Libertine O", Georgia, Cambria, "Times New Roman", serif;
  font-size: 17px; line-height: 1.5; color: #111;
  max-width: 44em; margin: 2.5em auto; padding: 0 1.5em;
  font-variant-numeric: lining-nums;
}
header#title-block-header { text-align: center; margin-bottom: 2.2em; }
h1.title { font-size: 1.9em; line-height: 1.2; margin: 0 0 0.3em; }
p.subtitle { font-size: 1.25em; margin: 0 0 0.6em; }
p.author, p.date { margin: 0.15em 0; }
div.abstract { text-align: justify; margin: 1.6em 2.5em 0; font-size: 0.95em; }
div.abstract-title { font-weight: bold; text-align: center; margin-bottom: 0.3em; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.6em 0 0.5em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; } h3, h4 { font-size: 1.05em; }
p { margin: 0.7em 0; }
a { color: #1a4f8b; text-decoration: none; }
a:hover { text-decoration: underline; }
figure { margin: 1.8em 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: 0.92em; margin-top: 0.6em; }
table {
  border-collapse: collapse; margin: 1.8em auto; font-size: 0.92em; min-width: 80%;
  border-top: 2px solid #000; border-bottom: 2px solid #000;
  font-variant-numeric: tabular-nums lining-nums;
}
caption { caption-side: top; text-align: left; padding-bottom: 0.5em; font-size: 1.087em; }
thead th { border-bottom: 1px solid #000; font-weight: bold; vertical-align: bottom; }
th, td { padding: 0.3em 0.9em; vertical-align: top; }
div.table-note {
  font-size: 0.82em; line-height: 1.4; max-width: 80%; margin: -1.2em auto 1.8em;
}
pre, code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.82em; }
pre { background: #f6f6f6; padding: 0.7em 1em; overflow-x: auto; line-height: 1.35; }
pre.output { background: #fff; border-left: 3px solid #ccc; }
nav#TOC { margin: 1.5em 0; font-size: 0.95em; }
@media print { body { max-width: none; margin: 0; font-size: 11pt; } a { color: inherit; } }
"""

# A pandoc template for Typst. Pandoc variables are $...$, so Typst math is not used here.
TYPST_TEMPLATE = """\
#set document(title: [$if(title)$$title$$else$$pagetitle$$endif$])
#set page(
  paper: "a4",
  margin: (x: 2.5cm, top: 2.5cm, bottom: 2.8cm),
  numbering: "1 / 1",
  number-align: center,
  header: context {
    if counter(page).get().first() > 1 [
      #set text(size: 8.5pt, fill: luma(90))
      $if(title)$$title$$endif$
      #h(1fr)
      $if(date)$$date$$endif$
    ]
  },
)
#set text(font: ("Libertinus Serif",), size: 11pt, lang: "$lang$".split("-").first())
#set par(justify: true, leading: 0.62em, spacing: 1.1em)
#show heading: set block(above: 1.5em, below: 0.8em)
#show heading.where(level: 1): set text(size: 13.5pt)
#show heading.where(level: 2): set text(size: 12pt)
#show link: set text(fill: rgb("#1a4f8b"))
#show raw: set text(font: ("DejaVu Sans Mono",), size: 8.5pt)
#show raw.where(block: true): it => {
  if it.lang == "output" {
    block(stroke: (left: 2pt + luma(190)), inset: (left: 8pt, y: 5pt), width: 100%, it)
  } else {
    block(fill: luma(246), inset: 8pt, width: 100%, it)
  }
}
// Figures and tables are numbered by the renderer (the number is in the caption text).
#set figure(numbering: none, gap: 0.8em)
#show figure: set block(breakable: false, above: 1.6em, below: 1.6em)
// long tables continue on the next page, repeating their header row
#show figure.where(kind: table): set block(breakable: true)
// sticky: a caption above its table never ends a page alone
#show figure.caption: it => block(width: 100%, sticky: true, align(left, text(size: 10pt, it.body)))
#show figure.where(kind: table): set figure.caption(position: top)
#set table(stroke: none, inset: (x: 6pt, y: 3.5pt))
#show table: set text(size: 9.5pt, number-type: "lining")
#show table: set par(justify: false)  // justified cells spread headers ("Median, days,   Kaplan-")
#show table: it => block(stroke: (top: 1pt + black, bottom: 1pt + black), it)
#show table.cell.where(y: 0): set text(weight: "bold")
#let horizontalrule = line(start: (25%, 0%), end: (75%, 0%))

$if(highlighting-definitions)$
$highlighting-definitions$
$endif$

$if(title)$
#align(center)[
  #block(below: 0.6em)[#text(size: 17pt, weight: "bold")[$title$]]
$if(subtitle)$
  #block(below: 0.9em)[#text(size: 13pt)[$subtitle$]]
$endif$
$if(author)$
  #block(below: 0.4em)[$for(author)$$author$$sep$, $endfor$]
$endif$
$if(date)$
  #block(below: 0.4em)[$date$]
$endif$
]
$endif$
$if(abstract)$
#block(inset: (x: 2.2em), above: 1.4em, below: 1.8em)[
  #align(center)[#text(weight: "bold")[Abstract]]
  #set text(size: 10pt)
  $abstract$
]
$endif$
$if(toc)$
#outline(title: [Contents], depth: $if(toc-depth)$$toc-depth$$else$3$endif$)
$endif$

$body$
"""

_SERIF = "Times New Roman"
_TABLE_NOTE_STYLE = (
    '<w:style w:type="paragraph" w:customStyle="1" w:styleId="TableNote">'
    '<w:name w:val="Table Note" /><w:basedOn w:val="Normal" /><w:qFormat />'
    '<w:pPr><w:spacing w:before="60" w:after="240" /></w:pPr>'
    '<w:rPr><w:sz w:val="18" /><w:szCs w:val="18" /></w:rPr></w:style>'
)


def reference_docx(pandoc: str) -> bytes:
    """Build the Word reference document from pandoc's default one.

    Changes: serif body and headings (Times New Roman, 11 pt), black headings, upright
    captions, a three-rule table style (rules above and below the table and under the
    header row), as journals set tables, and A4 pages with 2.5 cm margins and the page
    number centred in the footer (as in the PDF).
    """
    default = subprocess.run(
        [pandoc, "--print-default-data-file", "reference.docx"],
        check=True,
        capture_output=True,
    ).stdout
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(default)) as zin,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/styles.xml":
                data = _adjust_styles(data.decode("utf-8")).encode("utf-8")
            elif item.filename in _PAGE_EDITS:
                data = _PAGE_EDITS[item.filename](data.decode("utf-8")).encode("utf-8")
            zout.writestr(_fixed_time(item.filename), data)
        zout.writestr(_fixed_time("word/footer1.xml"), _FOOTER)
    return out.getvalue()


def _fixed_time(name: str) -> zipfile.ZipInfo:
    """A compressed zip entry stamped 1980-01-01, so the bytes never carry the clock."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


_FOOTER = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:ftr xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
  <w:p>
    <w:pPr><w:jc w:val="center" /></w:pPr>
    <w:r><w:fldChar w:fldCharType="begin" /></w:r>
    <w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r>
    <w:r><w:fldChar w:fldCharType="separate" /></w:r>
    <w:r><w:t>1</w:t></w:r>
    <w:r><w:fldChar w:fldCharType="end" /></w:r>
    <w:r><w:t xml:space="preserve"> / </w:t></w:r>
    <w:r><w:fldChar w:fldCharType="begin" /></w:r>
    <w:r><w:instrText xml:space="preserve"> NUMPAGES </w:instrText></w:r>
    <w:r><w:fldChar w:fldCharType="separate" /></w:r>
    <w:r><w:t>1</w:t></w:r>
    <w:r><w:fldChar w:fldCharType="end" /></w:r>
  </w:p>
</w:ftr>
"""
#: A4 (twips), 2.5 cm margins, the footer above.
_SECTION = (
    '<w:sectPr><w:footerReference w:type="default" r:id="rIdPageFooter" />'
    '<w:pgSz w:w="11906" w:h="16838" />'
    '<w:pgMar w:top="1418" w:right="1418" w:bottom="1588" w:left="1418" '
    'w:header="709" w:footer="709" w:gutter="0" />'
)


def _page_section(xml: str) -> str:
    if xml.count("<w:sectPr>") != 1:
        raise RuntimeError("pandoc's reference.docx has no single section to set to A4")
    return xml.replace("<w:sectPr>", _SECTION)


def _footer_relation(xml: str) -> str:
    rel = (
        '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/footer" Id="rIdPageFooter" Target="footer1.xml" />'
    )
    return xml.replace("</Relationships>", rel + "</Relationships>")


def _footer_content_type(xml: str) -> str:
    part = (
        '<Override PartName="/word/footer1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.footer+xml" />'
    )
    return xml.replace("</Types>", part + "</Types>")


_PAGE_EDITS = {
    "word/document.xml": _page_section,
    "word/_rels/document.xml.rels": _footer_relation,
    "[Content_Types].xml": _footer_content_type,
}


def _adjust_styles(xml: str) -> str:
    font = f'w:ascii="{_SERIF}" w:hAnsi="{_SERIF}" w:cs="{_SERIF}"'
    xml = re.sub(r'w:asciiTheme="\w+"', f'w:ascii="{_SERIF}"', xml)
    xml = re.sub(r'w:hAnsiTheme="\w+"', f'w:hAnsi="{_SERIF}"', xml)
    xml = re.sub(r'w:cstheme="\w+"', f'w:cs="{_SERIF}"', xml)
    xml = re.sub(
        r'<w:rFonts w:eastAsiaTheme="majorEastAsia"\s+w:cs="[^"]*" />', f"<w:rFonts {font} />", xml
    )
    # body text 11 pt instead of 12 pt
    xml = xml.replace(
        '<w:sz w:val="24" />\n        <w:szCs w:val="24" />',
        '<w:sz w:val="22" />\n        <w:szCs w:val="22" />',
        1,
    )
    # black headings: drop the theme colour too, which Word prefers to the plain value
    xml = re.sub(
        r"<w:color\b[^>]*?w:val=\"(?:4F81BD|365F91|0F4761)\"[^>]*/>",
        '<w:color w:val="000000" />',
        xml,
        flags=re.S,
    )
    # bold title and headings, in journal sizes (half-points)
    for style_id, size in (("Title", 40), ("Heading1", 32), ("Heading2", 26), ("Heading3", 24)):
        xml = _edit_style(xml, style_id, functools.partial(_bold_size, size=size))
    # the title block's other lines inherit from Title: plain weight, no letter spacing
    for style_id in ("Subtitle", "Author", "Date"):
        xml = _edit_style(
            xml,
            style_id,
            lambda block: block.replace('<w:spacing w:val="15" />', "").replace(
                "<w:rPr>", '<w:rPr>\n      <w:b w:val="0" />', 1
            ),
        )
    # captions upright, not italic
    xml = _edit_style(xml, "Caption", lambda block: block.replace("<w:i />", ""))
    # small type for notes under tables (journal_table(..., note=...))
    xml = xml.replace("</w:styles>", _TABLE_NOTE_STYLE + "</w:styles>")
    # three rules: above and below the table, and under the header row
    rule = '<w:{side} w:val="single" w:sz="8" w:space="0" w:color="000000" />'
    borders = (
        "<w:tblBorders>" + rule.format(side="top") + rule.format(side="bottom") + "</w:tblBorders>"
    )
    return _edit_style(
        xml,
        "Table",
        lambda block: block.replace("<w:tblPr>", "<w:tblPr>" + borders, 1).replace(
            '<w:bottom w:val="single"/>',
            '<w:bottom w:val="single" w:sz="4" w:space="0" w:color="000000"/>',
        ),
    )


def _edit_style(xml: str, style_id: str, edit: Callable[[str], str]) -> str:
    found = re.search(rf'<w:style [^>]*w:styleId="{style_id}"[^>]*>.*?</w:style>', xml, flags=re.S)
    if found is None:
        raise RuntimeError(f"pandoc's reference.docx has no {style_id!r} style to adjust")
    return xml.replace(found.group(0), edit(found.group(0)))


def _bold_size(block: str, size: int) -> str:
    block = re.sub(r'<w:sz w:val="\d+" />', f'<w:sz w:val="{size}" />', block)
    block = re.sub(r'<w:szCs w:val="\d+" />', f'<w:szCs w:val="{size}" />', block)
    return block.replace("<w:rPr>", "<w:rPr>\n      <w:b />", 1)
