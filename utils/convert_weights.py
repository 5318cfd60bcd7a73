"""seg-mentor's weights converter command, `python utils/convert_weights.py resnet18.pth` or `... model.safetensors`
(Hugging Face SegFormer / MiT): see nets/torch_weights.py and nets/segformer_weights.py."""
import sys

from nets.segformer_weights import main

if __name__ == "__main__":
    sys.exit(main())
