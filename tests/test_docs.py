"""The front page and docs/: the README stays short, and every relative link in
them leads to a file (and heading) that exists."""

import glob
import os
import re

import pytest

from pipeline import config as config_lib

REPO = config_lib.REPO_ROOT
PAGES = [os.path.join(REPO, 'README.md')] + sorted(
    glob.glob(os.path.join(REPO, 'docs', '*.md')))
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _anchors(markdown_path):
  """GitHub's anchors of a page's headings."""
  with open(markdown_path) as f:
    headings = [line.lstrip('#').strip() for line in f if line.startswith('#')]
  return {re.sub(r'[^\w\- ]', '', h.lower()).replace(' ', '-') for h in headings}


def test_the_readme_is_a_front_page():
  assert os.path.getsize(os.path.join(REPO, 'README.md')) <= 12 * 1024
  with open(os.path.join(REPO, 'README.md')) as f:
    text = f.read()
  # No lab notes: commit hashes or dated runs.
  assert not re.search(r'\b[0-9a-f]{7,40}\b', text), 'a commit hash'
  assert not re.search(r'\b20\d\d-\d\d-\d\d\b', text), 'a date'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(page):
  with open(page) as f:
    text = re.sub(r'```.*?```', '', f.read(), flags=re.S)  # not in code blocks
  broken = []
  for target in LINK.findall(text):
    if re.match(r'[a-z]+:', target):
      continue  # http(s), mailto
    path, _, anchor = target.partition('#')
    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) \
        if path else page
    if not os.path.exists(resolved):
      broken.append(target)
    elif anchor and resolved.endswith('.md') and anchor not in _anchors(resolved):
      broken.append(target)
  assert not broken, broken
