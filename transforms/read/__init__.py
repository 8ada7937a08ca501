"""Read stage: inputs (globs, folders, .txt lists; local or gs://) -> encoded images and read error rows.

plan.py runs in the launcher: it detects each input's format and checks the
options against it. match.py turns inputs into files (fileio.MatchAll, each
file once); one reader per format (image_files.py, tfrecord_shards.py,
tar_shards.py) turns files into EncodedImage elements; readers.py puts them
together. formats/ holds the Beam-free format code they share with the packer.
totals.py, also in the launcher, counts what the inputs hold for the live
progress line's total.
"""
