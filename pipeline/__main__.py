"""python -m pipeline --input ... --output ... --model ...: see README.md."""
import sys

from pipeline.run import main

sys.exit(main())
