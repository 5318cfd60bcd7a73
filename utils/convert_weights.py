"""seg-mentor's weights converter command, `python utils/convert_weights.py resnet18.pth`: see nets/torch_weights.py."""
import sys

from nets.torch_weights import main

if __name__ == "__main__":
    sys.exit(main())
