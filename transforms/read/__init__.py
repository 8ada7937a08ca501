"""Read stage: inputs (globs, folders, .txt lists; local or gs://) -> encoded images and read error rows.

plan.py runs in the launcher: it detects each input's format and checks the
options against it. match.py turns inputs into files (listing.py: as a stream,
on a worker; a file two inputs name is read once, match.once); one reader per
format (image_files.py, tfrecord_shards.py, tar_shards.py, parquet_tables.py,
arrow_tables.py) turns files into EncodedImage elements; readers.py puts them
together. formats/ holds the Beam-free format code they share with the packer.
totals.py makes the live progress line's total of what the workers' listing
counted.
"""
