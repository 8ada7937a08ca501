"""Peak memory and time of `python -m pipeline.export` at two output sizes (docs/benchmarks.md, "The export").

  .venv/bin/python -m benchmarks.export --rows 1000000 --small_rows 50000

makes (once, under bench_data/) two synthetic finished outputs as the job writes them (benchmarks/report.py:
512-value fixed-size embeddings, a manifest) and exports each to npy and to Lance in a child process, small and
large side by side; prints each run's wall time, CPU time and peak RSS (report.run_child). Streaming means the
peak does not grow with the rows.
"""
import argparse
import json
import pathlib
import shutil
import sys

from benchmarks import report, shared


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.export', description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, default=1_000_000)
  parser.add_argument('--small_rows', type=int, default=50_000)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--data', default=str(shared.ROOT / 'bench_data'))
  args = parser.parse_args(argv)
  data = pathlib.Path(args.data)
  outputs = {rows: report.make_output(data / f'report_v2_{rows}_512', rows) for rows in (args.small_rows, args.rows)}
  for repeat in range(args.repeats):
    for to in ('npy', 'lance'):
      for rows, output in outputs.items():
        folder = data / f'export_{to}_{rows}'
        shutil.rmtree(folder, ignore_errors=True)
        dest = folder / 'images.lance' if to == 'lance' else folder
        measured = report.run_child(['-m', 'pipeline.export', str(output), str(dest), '--to', to])
        print(json.dumps(dict(repeat=repeat, to=to, rows=rows, **measured)), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
