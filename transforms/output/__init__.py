"""Write and commit: rows -> Parquet under the run's staging folder, then one commit step makes them the output.

layout.py names every path under --output; files.py holds the filesystem
helpers that behave alike on local disk and gs://; claim.py runs in the
launcher before any work (new, --overwrite, --resume); parquet.py is the write
stage; tally.py is the exact accounting; commit.py is the job's last step,
which checks the shards against the tally, moves them into place and writes
summary.json; checkpoint.py and resume.py let a crashed job continue.
"""
