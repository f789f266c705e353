"""Train any archspec network: the trainer is archspec.train (``archspec train --help``).

python examples/train.py specs/inception_v4.yaml --data synthetic --steps 100
python examples/train.py zoo:resnet18 --data digits --set input.size=[32,32] --epochs 3
torchrun --nproc_per_node 4 examples/train.py specs/inception_v4.yaml --data /data/imagenet/train
"""

import sys

from archspec.train import main

if __name__ == "__main__":
    sys.exit(main())
