"""seg-mentor's converter command, `python utils/tfrecordify.py --dataset_family ...`: see utils/data/convert.py."""
import sys

from utils.data.convert import main

if __name__ == "__main__":
    sys.exit(main())
