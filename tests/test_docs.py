"""The documentation holds together: a short README with the two commands, links that resolve, every page linked."""
import pathlib
import re
from typing import Iterator, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / 'README.md'
DOCS = ROOT / 'docs'
MAX_README_LINES = 200

_FENCE = re.compile(r'^(```|~~~).*?^\1[ \t]*$', re.M | re.S)  # fenced code blocks
_CODE_SPAN = re.compile(r'(`+).+?\1', re.S)  # inline code: `[x](y)` in it is not a link
_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')  # [text](target "title")
_EXTERNAL = re.compile(r'^[a-z][a-z0-9+.-]*:', re.I)  # http:, https:, mailto:, ...


def pages() -> List[pathlib.Path]:
  return [README] + sorted(DOCS.glob('*.md')) + sorted(ROOT.glob('templates/*/README.md'))


def links(page: pathlib.Path) -> Iterator[str]:
  text = _CODE_SPAN.sub('', _FENCE.sub('', page.read_text(encoding='utf-8')))
  for match in _LINK.finditer(text):
    yield match.group(1)


def local_targets(page: pathlib.Path) -> Iterator[Tuple[str, pathlib.Path]]:
  """(link as written, the file it names) for every relative link of the page; anchors stripped."""
  for link in links(page):
    if _EXTERNAL.match(link):
      continue
    path = link.split('#', 1)[0]
    yield link, (page.parent / path).resolve() if path else page


def test_readme_is_a_short_front_page_with_the_two_commands():
  text = README.read_text(encoding='utf-8')
  assert len(text.splitlines()) <= MAX_README_LINES
  assert 'python3 -m venv .venv' in text  # set up and run the main job
  assert 'python -m pytest -q tests' in text  # the tests


def test_the_pages_exist():
  assert DOCS.is_dir() and list(DOCS.glob('*.md'))
  assert list(ROOT.glob('templates/*/README.md'))


def test_every_relative_link_resolves():
  broken = [f'{page.relative_to(ROOT)}: {link}' for page in pages()
            for link, target in local_targets(page) if not target.exists()]
  assert not broken, 'links to missing files:\n' + '\n'.join(broken)


def test_every_docs_page_is_linked_from_the_readme():
  linked = {target for _, target in local_targets(README)}
  missing = [str(page.relative_to(ROOT)) for page in sorted(DOCS.glob('*.md')) if page.resolve() not in linked]
  assert not missing, f'docs pages the README does not link: {missing}'


def test_the_link_finder_sees_links_and_skips_code(tmp_path):
  (tmp_path / 'there.md').write_text('x')
  page = tmp_path / 'page.md'
  page.write_text('[a](there.md) [b](there.md#part) [c](https://example.com/x.md) [d](#here) [e](gone.md)\n'
                  '`[f](nowhere.md)`\n```\n[g](nowhere.md)\n```\n', encoding='utf-8')
  assert list(links(page)) == ['there.md', 'there.md#part', 'https://example.com/x.md', '#here', 'gone.md']
  assert [(link, target.exists()) for link, target in local_targets(page)] == [
      ('there.md', True), ('there.md#part', True), ('#here', True), ('gone.md', False)]
