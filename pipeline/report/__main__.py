"""python -m pipeline.report OUT [--compare OTHER_OUT] [--output FILE]: the run report of a finished output."""
import argparse
import sys
from typing import List, Optional

from pipeline.report import REPORT_FILE, ReportError, write_report


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m pipeline.report',
                                   description='Write one self-contained HTML page showing what a job did.')
  parser.add_argument('output', metavar='OUT', help='the job\'s --output (local or gs://), with its summary.json')
  parser.add_argument('--compare', metavar='OTHER_OUT', default=None,
                      help='another run\'s output: labels side by side, changed top-1 labels, rows and errors '
                      'added or lost')
  parser.add_argument('--output', dest='file', metavar='FILE', default=None,
                      help=f'where to write the page (default OUT/{REPORT_FILE})')
  args = parser.parse_args(argv)  # a bad option exits 2
  try:
    path = write_report(args.output, args.compare, args.file)
  except (ReportError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
