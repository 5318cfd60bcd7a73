"""seg-mentor's label checker command, `python utils/label_checker.py --tfrecords ...`: see utils/data/label_checker.py."""
import sys

from utils.data.label_checker import main

if __name__ == "__main__":
    sys.exit(main())
