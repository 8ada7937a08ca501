"""The report as one HTML page: styles, charts (SVG) and thumbnails (data: URIs) inline, no script, no request.

Every value from the data is escaped. Elements the tests and readers look
for carry ids: `rows_written`, `errors`, `records_read`, `changed_count`,
`stage-STAGE` (error rows of a stage), `label-table`.
"""
import html
from typing import Dict, List, Optional, Sequence

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px;
color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-size:12px}.warn{color:#b00020;font-weight:600}
.sheet{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:136px;font-size:11px;word-break:break-all}
figure img{display:block;max-width:128px;max-height:128px;border:1px solid #ccc}
.missing{width:128px;height:96px;background:#f3f3f3;color:#888;font-size:10px;overflow:hidden;padding:2px}
svg{max-width:100%;height:auto}code{font-size:12px}
"""


def esc(value) -> str:
  return html.escape(str(value), quote=True)


def number(value) -> str:
  if isinstance(value, bool) or value is None:
    return esc(value)
  if isinstance(value, int):
    return f'{value:,}'
  if isinstance(value, float):
    return f'{value:,.4g}' if abs(value) < 1000 else f'{value:,.0f}'
  return esc(value)


def table(header: Sequence[str], rows: List[Sequence], numeric: Sequence[int] = (), attrs: str = '') -> str:
  head = ''.join(f'<th{" class=n" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(header))
  body = ''.join('<tr>' + ''.join(f'<td{" class=n" if i in numeric else ""}>{cell}</td>' for i, cell in enumerate(row))
                 + '</tr>' for row in rows)
  return f'<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def key_values(pairs: List[tuple]) -> str:
  """A two-column table; a pair (name, value, element id) gives the value cell that id."""
  rows = []
  for pair in pairs:
    name, value = pair[0], pair[1]
    ident = f' id="{esc(pair[2])}"' if len(pair) > 2 else ''
    rows.append(f'<tr><th>{esc(name)}</th><td class=n{ident}>{number(value)}</td></tr>')
  return f'<table>{"".join(rows)}</table>'


def figure(thumb: tuple, caption: str) -> str:
  uri, why = thumb
  picture = f'<img src="{esc(uri)}" alt="">' if uri else f'<div class=missing>{esc(why)}</div>'
  return f'<figure>{picture}<figcaption>{caption}</figcaption></figure>'


def sheet(rows: List[dict], thumbs: Dict[str, tuple], label_names: Optional[List[str]] = None) -> str:
  figures = []
  for row in rows:
    caption = f'<b>{esc(row["id"])}</b>'
    if row.get('score') is not None:
      caption += f' {row["score"]:.3f}'
    if label_names is not None and row.get('label') is not None:
      caption += f'<br>{esc(label_names[row["label"]])}'
    figures.append(figure(thumbs.get(row['source'], (None, 'not read')), caption))
  return f'<div class=sheet>{"".join(figures)}</div>'


def section(ident: str, title: str, *parts: str) -> str:
  return f'<section id="{esc(ident)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def note(text: str) -> str:
  return f'<p class=note>{text}</p>'


def document(title: str, sections: List[str]) -> str:
  # default-src 'none' makes the browser itself refuse any request the page might make; data: images allowed.
  policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
  return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
          '<meta name="viewport" content="width=device-width, initial-scale=1">'
          f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{_STYLE}</style></head><body>'
          f'<h1>{esc(title)}</h1>{"".join(sections)}</body></html>\n')
