"""Matchers for Beam's assert_that shared by the reader tests."""


def errors_like(expected):
  """Matches error tuples (id, source, stage, message) against (id, source, stage, words in message)."""
  def check(actual):
    actual, want = sorted(actual), sorted(expected)
    assert [a[:3] for a in actual] == [w[:3] for w in want], actual
    for a, w in zip(actual, want):
      assert w[3] in a[3], (a, w)
  return check
