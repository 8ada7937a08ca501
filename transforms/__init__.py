"""The job's stages, in the order data flows through them:

  read/     inputs -> read units -> encoded images (plan, matching, one reader per format; formats/ is Beam-free)
  decode.py encoded images -> pixels at the model's size
  infer/    pixels -> predictions, through RunInference and the project's ModelHandler (models/ is Beam-free)
  format.py predictions and errors -> output rows
  analyze/  [--analyze_embeddings] a tf.Transform PCA of all embeddings (TF half apart from the Beam half)
  output/   each read unit's rows -> its Parquet parts and marker, the exact tally, the commit step; claim and
            resume beside

elements.py holds the element types that flow between them; progress.py, gcs_auth.py and native_logs.py
are process-wide helpers. pipeline/graph.py puts the stages together.
"""
