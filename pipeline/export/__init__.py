"""python -m pipeline.export OUT --to npy|lance DEST: a finished output's vectors as retrieval tools take them.

  committed.py  the output's prediction rows, streamed from the parts its manifest lists (finished outputs only)
  npy.py        clip-retrieval's layout: img_emb/img_emb_N.npy beside metadata/metadata_N.parquet, row-aligned,
                which autofaiss and faiss read
  lance.py      a Lance dataset (LanceDB opens it as a table), with an optional vector index
  __main__.py   the command line
Both stream: memory holds one batch of rows, whatever the output's size.
"""
