"""Write and commit: each read unit's rows -> its own Parquet parts and marker, then one commit step checks them.

layout.py names every path under --output; files.py holds the filesystem
helpers that behave alike on local disk and gs://; claim.py runs in the
launcher before any work (new, --overwrite, --resume); write_units.py is the
write stage and markers.py a unit's commit; tally.py is the exact accounting,
from the units' markers; commit.py is the job's last step, which checks the
kept units against the tally, deletes what no unit keeps and writes
summary.json; resume.py lets a crashed job skip the units it committed;
parquet.py writes the analysed predictions with --analyze_embeddings.
"""
